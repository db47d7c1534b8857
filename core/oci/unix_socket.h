// Unix-socket helpers the runtime needs in three places (console socket, seccomp listener,
// pty master coming back from the container): connect, and pass a file descriptor with
// SCM_RIGHTS.
#pragma once

#include <berth/result.h>

#include <string>
#include <string_view>

namespace berth::oci {

// `what` names the socket in errors ("console socket").
Result<int> connect_unix(const std::string& path, std::string_view what);
// Sends fd with `payload` (at least one byte goes: an empty payload sends "m").
Status send_fd(int sock, int fd, std::string_view payload);
Result<int> recv_fd(int sock);

}  // namespace berth::oci
