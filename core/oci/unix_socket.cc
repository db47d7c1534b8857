#include "core/oci/unix_socket.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace berth::oci {

Result<int> connect_unix(const std::string& path, std::string_view what) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) return invalid_argument("{} path \"{}\" is too long", what, path);
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return from_errno(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    ::close(s);
    return from_errno(err, "connect to {} {}", what, path);
  }
  return s;
}

Status send_fd(int sock, int fd, std::string_view payload) {
  if (payload.empty()) payload = "m";
  msghdr msg{};
  iovec iov{const_cast<char*>(payload.data()), payload.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) return from_errno(errno, "send a file descriptor");
  return Status();
}

Result<int> recv_fd(int sock) {
  msghdr msg{};
  char byte[4096];
  iovec iov{byte, sizeof byte};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return from_errno(errno, "receive a file descriptor");
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (n == 0 || !c || c->cmsg_type != SCM_RIGHTS) return internal_error("no file descriptor received");
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

}  // namespace berth::oci
