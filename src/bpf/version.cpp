// The build's identity for --version: generated headers (release, git revision) and libbpf's own version.
#include "sockmapd/version.hpp"

#include <bpf/libbpf.h>

#include "sockmapd/git_revision.h"
#include "sockmapd/json_output.hpp"
#include "sockmapd/version.h"

namespace sockmapd {

VersionInfo version_info()
{
    return {.version = SOCKMAPD_VERSION, .git_revision = SOCKMAPD_GIT_REVISION, .libbpf = libbpf_version_string()};
}

std::string format_version_text(const std::string& program, const VersionInfo& info)
{
    return program + " " + info.version + " (git " + info.git_revision + ", libbpf " + info.libbpf + ")\n";
}

std::string format_version_json(const std::string& program, const VersionInfo& info)
{
    nlohmann::ordered_json out;
    out["program"] = program;
    out["version"] = info.version;
    out["git_revision"] = info.git_revision;
    out["libbpf"] = info.libbpf;
    return format_json(out);
}

} // namespace sockmapd
