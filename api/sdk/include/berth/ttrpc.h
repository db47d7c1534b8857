// The ttrpc edge of the SDK: methods a plugin serves on berthd's ttrpc socket (the address shims
// get as TTRPC_ADDRESS), for example containerd.services.events.ttrpc.v1.Events/Forward.
#pragma once

#include <berth/plugin.h>

#include <functional>
#include <string>
#include <vector>

namespace berth {

class BERTH_API TtrpcService {
 public:
  struct Method {
    std::string service;  // "containerd.services.events.ttrpc.v1.Events"
    std::string method;   // "Forward"
    // The serialized request in, the serialized response out. Runs on the ttrpc server's thread:
    // keep it quick.
    std::function<Result<std::string>(const std::string& payload)> handle;
  };
  virtual ~TtrpcService() = default;
  virtual std::vector<Method> ttrpc_methods() = 0;
};

}  // namespace berth
