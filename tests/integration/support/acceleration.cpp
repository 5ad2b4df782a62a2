// Reading the daemon's verdict on a case from two counter snapshots.
#include "acceleration.hpp"

#include <sstream>

namespace smdtest {

std::uint64_t counter_or_zero(const Counters& counters, const std::string& name)
{
    auto at = counters.find(name);
    return at == counters.end() ? 0 : at->second;
}

std::uint64_t moved_or_zero(const Counters& before, const Counters& after, const std::string& name)
{
    auto b = counter_or_zero(before, name), a = counter_or_zero(after, name);
    return a >= b ? a - b : 0;
}

PathVerdict path_verdict(const Counters& before, const Counters& after, std::uint64_t payload)
{
    PathVerdict v;
    v.payload = payload;
    v.redirected_bytes = moved_or_zero(before, after, "redirected_bytes");
    v.fallback_bytes = moved_or_zero(before, after, "fallback_bytes");
    for (const auto& name : kStepAsideCounters)
        if (auto n = moved_or_zero(before, after, name); n > 0)
            v.stepped_aside.emplace_back(name, n);
    return v;
}

std::string PathVerdict::describe() const
{
    std::ostringstream out;
    if (stepped()) {
        out << (accelerated() ? "accelerated and stepped aside:" : "stepped aside:");
        for (const auto& [name, n] : stepped_aside)
            out << " " << name << " +" << n;
        out << ";";
    } else if (accelerated()) {
        out << "accelerated:";
    } else {
        out << "NEITHER accelerated nor stepped aside:";
    }
    out << " " << redirected_bytes << " bytes redirected, " << fallback_bytes << " over TCP, payload " << payload;
    return out.str();
}

} // namespace smdtest
