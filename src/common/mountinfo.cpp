// Parses /proc/self/mountinfo; see proc(5) for the line format.
#include "sockmapd/mountinfo.hpp"

#include <fstream>
#include <sstream>

namespace sockmapd {
namespace {

std::string decode_octal_escapes(std::string_view field)
{
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            auto digits = field.substr(i + 1, 3);
            if (digits.size() == 3 && digits.find_first_not_of("01234567") == std::string_view::npos) {
                out += static_cast<char>(std::stoi(std::string(digits), nullptr, 8));
                i += 3;
                continue;
            }
        }
        out += field[i];
    }
    return out;
}

} // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text)
{
    std::vector<MountEntry> mounts;
    std::istringstream lines{std::string(text)};
    std::string line;
    while (std::getline(lines, line)) {
        // id parent major:minor root mount_point options [optional...] - fs_type source super_options
        std::istringstream fields(line);
        std::string id, parent, dev, root, mount_point, options, field;
        if (!(fields >> id >> parent >> dev >> root >> mount_point >> options))
            continue;
        bool separator_seen = false;
        while (fields >> field) {
            if (field == "-") {
                separator_seen = true;
                break;
            }
        }
        std::string fs_type;
        if (!separator_seen || !(fields >> fs_type))
            continue;
        mounts.push_back({decode_octal_escapes(mount_point), fs_type});
    }
    return mounts;
}

std::optional<std::string> find_mount(const std::vector<MountEntry>& mounts, std::string_view fs_type)
{
    for (const auto& mount : mounts)
        if (mount.fs_type == fs_type)
            return mount.mount_point;
    return std::nullopt;
}

std::vector<MountEntry> read_mountinfo()
{
    std::ifstream file("/proc/self/mountinfo");
    std::stringstream text;
    text << file.rdbuf();
    return parse_mountinfo(text.str());
}

} // namespace sockmapd
