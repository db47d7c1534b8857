// The smallest useful Berth plugin: a configurable greeting, reported through introspection.
//
//   [plugins."io.berth.example.v1.hello"]
//     greeting = "hi"
#include <berth/plugin.h>

namespace example {

struct Config {
  std::string greeting = "hello";
};

class Hello : public berth::Plugin {
 public:
  explicit Hello(std::string greeting) : greeting_(std::move(greeting)) {}
  const std::string& greeting() const { return greeting_; }

 private:
  std::string greeting_;
};

std::vector<berth::Registration> registrations() {
  berth::Registration r;
  r.type = "io.berth.example.v1";
  r.id = "hello";
  // Initialised after the metadata store, which it could use through ic.get().
  r.requires_types = {std::string(berth::plugin_type::kMetadata)};
  r.config = [](berth::ConfigReader& reader) -> berth::Result<std::shared_ptr<const void>> {
    Config c;
    BERTH_RETURN_IF_ERROR(reader.read("greeting", c.greeting));
    if (c.greeting.empty()) return reader.invalid("greeting", "must not be empty");
    return berth::config_value(c);
  };
  r.init = [](berth::InitContext& ic) -> berth::Result<std::shared_ptr<berth::Plugin>> {
    const auto& cfg = ic.config<Config>();
    ic.exports()["greeting"] = cfg.greeting;
    return std::shared_ptr<berth::Plugin>(std::make_shared<Hello>(cfg.greeting));
  };
  return {r};
}

}  // namespace example

BERTH_PLUGIN_MODULE(example::registrations)
