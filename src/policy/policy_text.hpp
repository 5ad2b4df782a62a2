// Text the policy's parts share: user values quoted for one-line messages, "did you mean" suggestions, lists.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sockmapd::policy_text {

// User text inside a message: quoted, control characters escaped and long values cut, so that the error
// stays one readable line whatever the file holds.
std::string shown(std::string_view text);

std::string join(const std::vector<std::string>& words, const char* separator);

// " -- did you mean 'uid'?" when one known key is obviously meant (a typo, a plural), else "".
std::string suggestion(std::string_view key, const std::vector<std::string>& known);

} // namespace sockmapd::policy_text
