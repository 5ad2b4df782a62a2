// A deliberately small reader for the subset of systemd's unit and environment file syntax deploy/ uses.
#include "systemd_unit.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <stdexcept>

namespace smdtest {
namespace {

std::string trim(const std::string& s)
{
    auto begin = s.find_first_not_of(" \t\r");
    if (begin == std::string::npos)
        return "";
    auto end = s.find_last_not_of(" \t\r");
    return s.substr(begin, end - begin + 1);
}

std::string unquote(const std::string& s)
{
    if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
        return s.substr(1, s.size() - 2);
    return s;
}

bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

std::string substitute_braces(const std::string& word, const EnvMap& env)
{
    std::string out;
    for (std::size_t i = 0; i < word.size(); ++i) {
        if (word[i] == '$' && i + 1 < word.size() && word[i + 1] == '{') {
            auto close = word.find('}', i + 2);
            if (close == std::string::npos)
                throw std::runtime_error("unterminated ${ in: " + word);
            auto it = env.find(word.substr(i + 2, close - i - 2));
            if (it != env.end())
                out += it->second;
            i = close;
            continue;
        }
        out += word[i];
    }
    return out;
}

} // namespace

UnitFile UnitFile::parse(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    UnitFile unit;
    std::string section;
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        std::string text = trim(line);
        if (text.empty() || text[0] == '#' || text[0] == ';')
            continue;
        std::string where = path + ":" + std::to_string(number) + ": ";
        if (text.back() == '\\')
            throw std::runtime_error(where + "line continuations are not supported");
        if (text.front() == '[') {
            if (text.back() != ']')
                throw std::runtime_error(where + "bad section header");
            section = text.substr(1, text.size() - 2);
            continue;
        }
        auto eq = text.find('=');
        if (eq == std::string::npos || section.empty())
            throw std::runtime_error(where + "not an assignment in a section: " + text);
        unit.sections_[section][trim(text.substr(0, eq))].push_back(trim(text.substr(eq + 1)));
    }
    return unit;
}

std::vector<std::string> UnitFile::all(const std::string& section, const std::string& key) const
{
    auto s = sections_.find(section);
    if (s == sections_.end())
        return {};
    auto k = s->second.find(key);
    return k == s->second.end() ? std::vector<std::string>{} : k->second;
}

std::string UnitFile::value(const std::string& section, const std::string& key) const
{
    auto values = all(section, key);
    return values.empty() ? "" : values.back();
}

std::vector<std::string> UnitFile::keys(const std::string& section) const
{
    std::vector<std::string> names;
    auto s = sections_.find(section);
    if (s != sections_.end())
        for (const auto& [key, values] : s->second)
            names.push_back(key);
    return names;
}

std::vector<std::string> split_words(const std::string& text)
{
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    char quote = 0;
    for (char c : text) {
        if (quote) {
            if (c == quote)
                quote = 0;
            else
                word += c;
        } else if (c == '"' || c == '\'') {
            quote = c;
            in_word = true;
        } else if (std::isspace(static_cast<unsigned char>(c))) {
            if (in_word)
                words.push_back(word);
            word.clear();
            in_word = false;
        } else {
            word += c;
            in_word = true;
        }
    }
    if (quote)
        throw std::runtime_error("unterminated quote in: " + text);
    if (in_word)
        words.push_back(word);
    return words;
}

void apply_environment(const std::string& value, EnvMap& env)
{
    for (const auto& word : split_words(value)) {
        auto eq = word.find('=');
        if (eq == std::string::npos || eq == 0)
            throw std::runtime_error("Environment= word without NAME=: " + word);
        env[word.substr(0, eq)] = word.substr(eq + 1);
    }
}

EnvMap parse_environment_file(const std::string& path)
{
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot read " + path);
    EnvMap env;
    std::string line;
    while (std::getline(in, line)) {
        std::string text = trim(line);
        if (text.empty() || text[0] == '#' || text[0] == ';')
            continue;
        auto eq = text.find('=');
        if (eq == std::string::npos)
            throw std::runtime_error(path + ": not NAME=VALUE: " + text);
        env[trim(text.substr(0, eq))] = unquote(trim(text.substr(eq + 1)));
    }
    return env;
}

std::vector<std::string> expand_command_line(const std::string& line, const EnvMap& env)
{
    std::string text = trim(line);
    if (!text.empty() && std::string("@-:+!").find(text[0]) != std::string::npos)
        throw std::runtime_error("command prefixes are not supported: " + text);
    std::vector<std::string> argv;
    for (const auto& word : split_words(text)) {
        bool bare_variable = word.size() > 1 && word[0] == '$' && word[1] != '{' &&
                             std::all_of(word.begin() + 1, word.end(), is_name_char);
        if (bare_variable) {
            auto it = env.find(word.substr(1));
            if (it != env.end())
                for (const auto& part : split_words(it->second))
                    argv.push_back(part);
            continue;
        }
        argv.push_back(substitute_braces(word, env));
    }
    return argv;
}

} // namespace smdtest
