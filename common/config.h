// Service configuration: one TOML file per service, every key with a
// documented default, command-line flags override the file.
//
//   ConfigSpec spec("shoal-meta", "metadata service");
//   spec.Add("listen", &cfg.listen, "address to serve RPC on");
//   RETURN_IF_ERROR(spec.Parse(argc, argv));
//
// Each key `foo_bar` is read from the TOML top level as `foo_bar` and from the
// command line as `--foo-bar`. `--config FILE` names the TOML file.
// `--print-config` prints every key with its help and effective value as TOML.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace shoal {

class ConfigSpec {
 public:
  ConfigSpec(std::string name, std::string description);

  void Add(const std::string& key, std::string* field, const std::string& help);
  void Add(const std::string& key, int64_t* field, const std::string& help);
  void Add(const std::string& key, uint32_t* field, const std::string& help);
  void Add(const std::string& key, bool* field, const std::string& help);
  void Add(const std::string& key, std::vector<std::string>* field, const std::string& help);

  // Parses flags and the config file. Returns INVALID_ARGUMENT with a message
  // on a bad flag, unreadable file, TOML syntax error or wrong value type.
  // Sets *exit_now when --help or --print-config was handled.
  Status Parse(int argc, char** argv, bool* exit_now);

  std::string Render() const;  // every key as TOML with help comments

  // Decides which file Parse reads, given --config ("" when not given): a
  // program that looks in well-known places when no file is named. Returns ""
  // to read none; an error ends Parse. Without a finder, exactly --config is read.
  void set_config_finder(std::function<Result<std::string>(const std::string& flag)> finder) {
    config_finder_ = std::move(finder);
  }
  // The file Parse read ("" for none).
  const std::string& config_path() const { return config_path_; }

  // The underlying parser, for programs that add subcommands or positionals.
  CLI::App& app() { return *app_; }

 private:
  struct Key {
    std::string name;
    std::string help;
    CLI::Option* option;
    std::function<Status(const void* toml_table)> from_toml;
    std::function<std::string()> render;
  };
  std::unique_ptr<CLI::App> app_;
  std::string config_path_;
  std::function<Result<std::string>(const std::string&)> config_finder_;
  bool print_config_ = false;
  std::vector<Key> keys_;
};

// Reads a whole small file (keys, configs). NOT_FOUND / IO_ERROR on failure.
Result<std::string> ReadSmallFile(const std::string& path);

}  // namespace shoal
