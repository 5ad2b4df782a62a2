// shared.h structs are map keys and values read by BPF and C++ alike: their bytes must be fully defined.
#include "sockmapd/shared.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <string_view>
#include <type_traits>

#include "sockmapd/datapath.hpp"

namespace {

// True when the type has no padding bytes; a key with padding hashes garbage and lookups miss.
template <typename T>
constexpr bool kNoPadding = std::has_unique_object_representations_v<T>;

// Sizes are the ABI of the pinned maps: changing one needs an SMD_ABI_VERSION bump.
static_assert(sizeof(smd_pair_key) == 24 && kNoPadding<smd_pair_key>);
static_assert(sizeof(smd_pair_key) == 8 + 4 + 4 + 2 + 2 + 4);
static_assert(sizeof(smd_sock_key) == 32 && kNoPadding<smd_sock_key>);
static_assert(sizeof(smd_sock_key) == sizeof(smd_pair_key) + 4 + 4);
static_assert(sizeof(smd_hint_key) == 32 && kNoPadding<smd_hint_key>);
static_assert(sizeof(smd_hint_key) == 8 + 4 * 4 + 2 + 2 + 4);
static_assert(sizeof(smd_hint) == 24 && kNoPadding<smd_hint>);
static_assert(offsetof(smd_hint, partner) == 8 && sizeof(smd_hint::partner) == sizeof(smd_hint_key::addr));
static_assert(sizeof(smd_pair_state) == 72 && kNoPadding<smd_pair_state>);
static_assert(sizeof(smd_pair_state) == 8 * 2 + 8 + 4 + 4 + sizeof(smd_policy_match) + 8 * 2);
static_assert(sizeof(smd_policy_match) == 24);
static_assert(sizeof(smd_policy_slot) == 56 && kNoPadding<smd_policy_slot>);
static_assert(sizeof(smd_policy_uid_key) == 8 && kNoPadding<smd_policy_uid_key>);
static_assert(sizeof(smd_policy_cgroup_key) == 16 && kNoPadding<smd_policy_cgroup_key>);
static_assert(sizeof(smd_policy_cidr_key) == 24 && kNoPadding<smd_policy_cidr_key>);
static_assert(sizeof(smd_policy_rule) == 264 && kNoPadding<smd_policy_rule>);
static_assert(sizeof(smd_policy_ctl) == 352 && kNoPadding<smd_policy_ctl>);
static_assert(sizeof(smd_sock_ctx) == 88 && kNoPadding<smd_sock_ctx>);
static_assert(sizeof(smd_sock_ctx) == sizeof(smd_sock_key) + 8 * 3 + 4 + 4 + 8 + 8 + 8);
static_assert(sizeof(smd_counters) == 8 * SMD_CTR_MAX && kNoPadding<smd_counters>);
static_assert(sizeof(smd_info) == 4 + 4 + 8 + 8 + SMD_INFO_PATH_MAX + SMD_INFO_VERSION_MAX && kNoPadding<smd_info>);

// Field offsets too: the same size with reordered fields would still break old pins.
static_assert(offsetof(smd_pair_key, active_seq) == 8 && offsetof(smd_pair_key, active_port) == 16);
static_assert(offsetof(smd_sock_key, role) == 24);
static_assert(offsetof(smd_hint_key, addr) == 8 && offsetof(smd_hint_key, port) == 24);
static_assert(offsetof(smd_pair_state, flags) == 24 && offsetof(smd_pair_state, sk) == 56);
static_assert(offsetof(smd_sock_ctx, redirected_bytes) == 32 && offsetof(smd_sock_ctx, flags) == 56);
static_assert(offsetof(smd_info, cgroup_path) == 24 && offsetof(smd_info, version) == 24 + SMD_INFO_PATH_MAX);
static_assert(offsetof(smd_sock_ctx, queue_cap) == 60);
static_assert(sizeof(smd_control) == 32 && kNoPadding<smd_control>);
static_assert(offsetof(smd_control, max_queued_bytes) == 8 && offsetof(smd_control, rmem_max) == 16);

TEST(SharedLayout, PairFlagsAreDistinctBits)
{
    const unsigned flags[] = {SMD_PAIR_ACTIVE_IN,
                              SMD_PAIR_PASSIVE_IN,
                              SMD_PAIR_ACTIVE_CLOSED,
                              SMD_PAIR_PASSIVE_CLOSED,
                              SMD_PAIR_POISONED,
                              SMD_PAIR_LEAVING,
                              SMD_PAIR_PINNED(SMD_ROLE_ACTIVE),
                              SMD_PAIR_PINNED(SMD_ROLE_PASSIVE),
                              SMD_PAIR_RELEASED(SMD_ROLE_ACTIVE),
                              SMD_PAIR_RELEASED(SMD_ROLE_PASSIVE)};
    unsigned seen = 0;
    for (unsigned flag : flags) {
        EXPECT_EQ(flag & (flag - 1), 0u) << flag << " is not a single bit";
        EXPECT_EQ(seen & flag, 0u) << flag << " is used twice";
        seen |= flag;
    }
}

// Kernel object names are 16 bytes: a longer map name is truncated and the pin file no longer matches it.
TEST(SharedLayout, PinnedMapNamesFitKernelObjectNames)
{
    auto names = sockmapd::pinned_map_names();
    EXPECT_GE(names.size(), 16u) << "the BPF object's maps";
    for (std::string_view name : names) {
        EXPECT_LE(name.size(), 15u) << name;
        EXPECT_TRUE(name.starts_with("smd_")) << name;
    }
}

TEST(SharedLayout, RolesMatchTheSockKeyEncoding)
{
    EXPECT_EQ(SMD_ROLE_ACTIVE, 0);
    EXPECT_EQ(SMD_ROLE_PASSIVE, 1);
}

} // namespace
