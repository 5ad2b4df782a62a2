// What --version and `sockmapctl version` print: release, git revision of the build, libbpf in use.
#pragma once

#include <string>

namespace sockmapd {

struct VersionInfo {
    std::string version;      // the release, SOCKMAPD_VERSION
    std::string git_revision; // `git describe` at build time, "unknown" without .git
    std::string libbpf;       // the libbpf the binary runs with, e.g. v1.1
};

VersionInfo version_info();

// "sockmapctl 0.1.0 (git 07b91d0c1a2b, libbpf v1.1)"
std::string format_version_text(const std::string& program, const VersionInfo& info);
// {"program": ..., "version": ..., "git_revision": ..., "libbpf": ...}
std::string format_version_json(const std::string& program, const VersionInfo& info);

} // namespace sockmapd
