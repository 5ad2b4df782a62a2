// Reading the policy file: refuse what is not a small regular file only its owner may change, hash its bytes.
#include "sockmapd/policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <cerrno>

#include "sockmapd/error.hpp"
#include "sockmapd/fd.hpp"

namespace sockmapd {
namespace {

std::string sha256_hex(std::string_view bytes)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        throw PolicyError("SHA-256 of the policy file failed (OpenSSL EVP_Digest)");
    static const char hex[] = "0123456789abcdef";
    std::string text;
    for (unsigned int i = 0; i < length; ++i) {
        text += hex[digest[i] >> 4];
        text += hex[digest[i] & 15];
    }
    return text;
}

std::string file_type(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    return "not a regular file";
}

} // namespace

Policy load_policy_file(const std::string& path)
{
    auto refuse = [&](const std::string& what) -> PolicyError { return PolicyError(path + ": " + what); };
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        int err = errno;
        struct stat link {};
        if (err == ENOENT && ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode))
            throw refuse("a symlink to a file that does not exist; pass a policy file that exists");
        if (err == ENOENT)
            throw refuse("no such file; pass the path of an existing policy file");
        throw refuse("cannot stat: " + errno_name(err) + "; pass a readable policy file");
    }
    // O_NONBLOCK: a FIFO put in the file's place must not hang the daemon; fstat decides on what was opened.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) {
        int err = errno;
        if (err == ENOENT)
            throw refuse("the file disappeared while being read; pass a policy file that exists");
        throw refuse("cannot open: " + errno_name(err) + "; make the file readable by sockmapd");
    }
    if (::fstat(fd.get(), &st) != 0)
        throw refuse("cannot stat: " + errno_name(errno));
    if (!S_ISREG(st.st_mode))
        throw refuse(file_type(st.st_mode) + ", not a regular file; pass a policy file");
    if (st.st_mode & S_IWOTH)
        throw PolicyError(path + " is world-writable, so anyone could change what is accelerated; chmod o-w " +
                          path);
    if (static_cast<std::uint64_t>(st.st_size) > kPolicyMaxFileBytes)
        throw refuse("the file is " + std::to_string(st.st_size) + " bytes; a policy file has at most " +
                     std::to_string(kPolicyMaxFileBytes) + " bytes");

    std::string bytes;
    char buffer[65536];
    for (;;) {
        auto n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw refuse("cannot read: " + errno_name(errno));
        if (n == 0)
            break;
        bytes.append(buffer, static_cast<std::size_t>(n));
        if (bytes.size() > kPolicyMaxFileBytes)
            throw refuse("the file grew past " + std::to_string(kPolicyMaxFileBytes) + " bytes while being read");
    }
    auto policy = parse_policy(bytes, path);
    policy.source = path;
    policy.sha256 = sha256_hex(bytes);
    return policy;
}

} // namespace sockmapd
