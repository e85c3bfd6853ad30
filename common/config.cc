#include "common/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <iostream>
#include <sstream>

namespace shoal {

namespace {
std::string FlagName(const std::string& key) {
  std::string f = "--" + key;
  for (auto& c : f) if (c == '_') c = '-';
  return f;
}

template <typename T>
std::function<Status(const void*)> FromToml(std::string key, T* field) {
  return [key, field](const void* table) -> Status {
    const toml::node* n = static_cast<const toml::table*>(table)->get(key);
    if (!n) return Status::OK();
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      const toml::array* arr = n->as_array();
      if (!arr) return Error(proto::INVALID_ARGUMENT, "config key '" + key + "' must be an array of strings");
      field->clear();
      for (const auto& e : *arr) {
        auto s = e.value<std::string>();
        if (!s) return Error(proto::INVALID_ARGUMENT, "config key '" + key + "' must be an array of strings");
        field->push_back(*s);
      }
      return Status::OK();
    } else if constexpr (std::is_same_v<T, bool>) {
      auto v = n->value<bool>();
      if (!v) return Error(proto::INVALID_ARGUMENT, "config key '" + key + "' must be a boolean");
      *field = *v;
      return Status::OK();
    } else if constexpr (std::is_same_v<T, std::string>) {
      auto v = n->value<std::string>();
      if (!v) return Error(proto::INVALID_ARGUMENT, "config key '" + key + "' must be a string");
      *field = *v;
      return Status::OK();
    } else {
      auto v = n->value<int64_t>();
      if (!v || (*v < 0 && std::is_unsigned_v<T>))
        return Error(proto::INVALID_ARGUMENT, "config key '" + key + "' must be a non-negative integer");
      *field = static_cast<T>(*v);
      return Status::OK();
    }
  };
}

template <typename T>
std::function<std::string()> Renderer(T* field) {
  return [field]() -> std::string {
    std::ostringstream os;
    if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      toml::array a;
      for (const auto& s : *field) a.push_back(s);
      os << a;
    } else if constexpr (std::is_same_v<T, std::string>) {
      os << toml::value<std::string>(*field);
    } else if constexpr (std::is_same_v<T, bool>) {
      os << (*field ? "true" : "false");
    } else {
      os << *field;
    }
    return os.str();
  };
}
}  // namespace

ConfigSpec::ConfigSpec(std::string name, std::string description)
    : app_(std::make_unique<CLI::App>(description, name)) {
  app_->add_option("--config", config_path_, "TOML config file");
  app_->add_flag("--print-config", print_config_, "print the effective config as TOML and exit");
}

#define SHOAL_CONFIG_ADD(T)                                                                \
  void ConfigSpec::Add(const std::string& key, T* field, const std::string& help) {        \
    CLI::Option* opt = app_->add_option(FlagName(key), *field, help);                      \
    keys_.push_back(Key{key, help, opt, FromToml<T>(key, field), Renderer<T>(field)});     \
  }
SHOAL_CONFIG_ADD(std::string)
SHOAL_CONFIG_ADD(int64_t)
SHOAL_CONFIG_ADD(uint32_t)
SHOAL_CONFIG_ADD(std::vector<std::string>)
#undef SHOAL_CONFIG_ADD

void ConfigSpec::Add(const std::string& key, bool* field, const std::string& help) {
  CLI::Option* opt = app_->add_option(FlagName(key), *field, help);
  keys_.push_back(Key{key, help, opt, FromToml<bool>(key, field), Renderer<bool>(field)});
}

Status ConfigSpec::Parse(int argc, char** argv, bool* exit_now) {
  *exit_now = false;
  try {
    app_->parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help
      app_->exit(e);
      *exit_now = true;
      return Status::OK();
    }
    return Error(proto::INVALID_ARGUMENT, e.what());
  }
  if (config_finder_) {
    ASSIGN_OR_RETURN(std::string found, config_finder_(config_path_));
    config_path_ = std::move(found);
  }
  if (!config_path_.empty()) {
    toml::table table;
    try {
      table = toml::parse_file(config_path_);
    } catch (const toml::parse_error& e) {
      std::ostringstream os;
      os << config_path_ << ":" << e.source().begin.line << ": " << e.description();
      return Error(proto::INVALID_ARGUMENT, os.str());
    }
    for (const auto& [k, v] : table) {
      bool known = false;
      for (const auto& key : keys_) known |= key.name == k.str();
      if (!known) return Error(proto::INVALID_ARGUMENT, config_path_ + ": unknown key '" + std::string(k.str()) + "'");
    }
    for (auto& key : keys_) {
      if (key.option->count() > 0) continue;  // the flag wins
      RETURN_IF_ERROR(key.from_toml(&table));
    }
  }
  if (print_config_) {
    std::cout << Render();
    *exit_now = true;
  }
  return Status::OK();
}

std::string ConfigSpec::Render() const {
  std::ostringstream os;
  for (const auto& key : keys_) os << "# " << key.help << "\n" << key.name << " = " << key.render() << "\n\n";
  return os.str();
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(proto::NOT_FOUND, "cannot open " + path);
  std::ostringstream os;
  os << in.rdbuf();
  if (in.bad()) return Error(proto::IO_ERROR, "cannot read " + path);
  return os.str();
}

}  // namespace shoal
