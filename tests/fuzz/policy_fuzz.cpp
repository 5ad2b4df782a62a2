// libFuzzer target for the policy parser: any input either parses or throws PolicyError; any other exception,
// a crash or a sanitizer report is a bug. Built with -DSOCKMAPD_FUZZ=ON and clang; scripts/test.sh runs it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

#include "sockmapd/policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        auto policy = sockmapd::parse_policy(text, "fuzz.yaml");
        // What parsed must hold what the BPF compiler relies on.
        if (policy.rules.size() > sockmapd::kPolicyMaxRules)
            std::abort();
        for (const auto& rule : policy.rules) {
            for (const auto& range : rule.ports)
                if (range.first == 0 || range.first > range.last)
                    std::abort();
            for (const auto& cidr : rule.cidrs)
                if (cidr.prefix_len > 128)
                    std::abort();
            (void)sockmapd::describe_selectors(rule);
        }
    } catch (const sockmapd::PolicyError& e) {
        std::string_view message = e.what();
        if (message.find('\n') != std::string_view::npos || message.rfind("fuzz.yaml", 0) != 0) {
            std::fprintf(stderr, "malformed error message: %s\n", e.what());
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "parse_policy threw something other than PolicyError: %s\n", e.what());
        std::abort();
    }
    return 0;
}
