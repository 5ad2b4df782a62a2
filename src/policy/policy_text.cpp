// Policy text: quoted values and suggestions for the parser's messages, and the one-line rule summary.
#include "policy_text.hpp"

#include <algorithm>
#include <cctype>

#include "sockmapd/policy.hpp"

namespace sockmapd {
namespace policy_text {
namespace {

constexpr std::size_t kShownLength = 60;

std::size_t edit_distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

} // namespace

std::string shown(std::string_view text)
{
    std::string out = "'";
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (i == kShownLength) {
            out += "...";
            break;
        }
        auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "'";
}

std::string join(const std::vector<std::string>& words, const char* separator)
{
    std::string text;
    for (const auto& word : words)
        text += (text.empty() ? "" : separator) + word;
    return text;
}

std::string suggestion(std::string_view key, const std::vector<std::string>& known)
{
    std::string lowered(key);
    std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) { return std::tolower(c); });
    const std::string* best = nullptr;
    std::size_t best_distance = 3;
    for (const auto& candidate : known) {
        auto distance = edit_distance(lowered, candidate);
        if (distance < best_distance && distance < candidate.size()) {
            best = &candidate;
            best_distance = distance;
        }
    }
    return best ? " -- did you mean '" + *best + "'?" : "";
}

} // namespace policy_text

using policy_text::join;

std::string describe_selectors(const PolicyRule& rule)
{
    std::vector<std::string> parts;
    if (!rule.uids.empty()) {
        std::vector<std::string> uids;
        for (auto uid : rule.uids)
            uids.push_back(std::to_string(uid));
        parts.push_back("uid=" + join(uids, ","));
    }
    if (!rule.cgroups.empty()) {
        std::vector<std::string> paths;
        for (const auto& cgroup : rule.cgroups)
            paths.push_back(cgroup.path);
        parts.push_back("cgroup=" + join(paths, ","));
    }
    if (!rule.ports.empty()) {
        std::vector<std::string> ports;
        for (const auto& range : rule.ports)
            ports.push_back(range.first == range.last
                                ? std::to_string(range.first)
                                : std::to_string(range.first) + "-" + std::to_string(range.last));
        parts.push_back("ports=" + join(ports, ","));
    }
    if (!rule.cidrs.empty()) {
        std::vector<std::string> cidrs;
        for (const auto& cidr : rule.cidrs)
            cidrs.push_back(cidr.text);
        parts.push_back("cidrs=" + join(cidrs, ","));
    }
    return parts.empty() ? "any" : join(parts, " ");
}

} // namespace sockmapd
