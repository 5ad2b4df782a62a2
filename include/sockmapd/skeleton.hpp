// Owns a bpftool-generated skeleton: open on construction, load on request, destroy when it dies.
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <string>

#include "sockmapd/error.hpp"

namespace sockmapd {

template <typename T, T* (*Open)(const struct bpf_object_open_opts*), int (*Load)(T*), void (*Destroy)(T*)>
class Skeleton {
public:
    Skeleton()
    {
        skel_ = Open(nullptr);
        if (!skel_)
            throw_errno(errno, "open BPF skeleton");
    }
    Skeleton(const Skeleton&) = delete;
    Skeleton& operator=(const Skeleton&) = delete;
    ~Skeleton()
    {
        if (skel_)
            Destroy(skel_);
    }

    void load()
    {
        int err = Load(skel_);
        if (err)
            throw_errno(-err, "load BPF programs and maps");
    }

    T* operator->() const { return skel_; }
    T* get() const { return skel_; }

private:
    T* skel_ = nullptr;
};

} // namespace sockmapd
