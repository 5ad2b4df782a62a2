// nginx for tests: a prefix directory per instance, `nginx -p PREFIX -c PREFIX/nginx.conf -e stderr`.
#include "nginx.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "env.hpp"

namespace smdtest {
namespace {

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace

Nginx::Nginx(const NetNs& ns, const std::string& config, const std::vector<std::string>& listening, uid_t uid)
    : prefix_("/tmp/" + unique_name("smd-nginx") + "/")
{
    std::filesystem::create_directories(prefix_);
    std::ofstream(prefix_ + "nginx.conf") << config;
    // nginx creates its temp directories and writes its pid file there, as `uid`.
    if (::chown(prefix_.c_str(), uid, uid) != 0)
        ADD_FAILURE() << "chown " << prefix_ << " to " << uid;
    process_ = Process({"nginx", "-p", prefix_, "-c", prefix_ + "nginx.conf", "-e", "stderr"},
                       {.netns = ns.name(), .uid = uid, .output_file = prefix_ + "stderr.log"});
    auto problem = wait_until_listening(ns, listening, process_);
    if (!problem.empty())
        ADD_FAILURE() << "nginx in " << ns.name() << ": " << problem << "\n" << log();
}

Nginx::~Nginx()
{
    process_.kill_and_reap(); // the process group: master and workers
    std::error_code ec;
    if (!::testing::Test::HasFailure()) {
        std::filesystem::remove_all(prefix_, ec);
        return;
    }
    // Kept for the post-mortem: the logs and the config, nothing bulky.
    for (const auto& entry : std::filesystem::directory_iterator(prefix_, ec)) {
        auto ext = entry.path().extension();
        if (ext != ".log" && ext != ".conf")
            std::filesystem::remove_all(entry.path(), ec);
    }
    std::fprintf(stderr, "nginx logs kept in %s\n", prefix_.c_str());
}

std::string Nginx::log() const { return read_text(prefix_ + "stderr.log") + read_text(prefix_ + "access.log"); }

std::string nginx_main_context(bool stream)
{
    std::string main = "daemon off;\n"
                       "worker_processes 1;\n"
                       "pid nginx.pid;\n"
                       "error_log stderr notice;\n";
    if (stream)
        main += "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n";
    return main + "events { worker_connections 1024; }\n";
}

std::string nginx_http_temp_paths()
{
    return "    client_body_temp_path client_body;\n"
           "    proxy_temp_path proxy;\n"
           "    fastcgi_temp_path fastcgi;\n"
           "    uwsgi_temp_path uwsgi;\n"
           "    scgi_temp_path scgi;\n";
}

} // namespace smdtest
