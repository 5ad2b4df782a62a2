// The shared JSON formatting of sockmapd --check --json and every sockmapctl subcommand.
#include "sockmapd/json_output.hpp"

namespace sockmapd {

std::string format_json(const nlohmann::ordered_json& value)
{
    return value.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::string format_error_json(const std::string& message, nlohmann::ordered_json extra)
{
    extra["error"] = message;
    return format_json(extra);
}

} // namespace sockmapd
