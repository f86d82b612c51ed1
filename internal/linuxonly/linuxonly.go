// Package linuxonly stops the build on any system but Linux with a clear
// message. clusterd runs on Linux only: its event loops use epoll, the
// master and its workers talk over SOCK_SEQPACKET with SCM_RIGHTS, and
// static files are opened with openat2. Each package with Linux-only code
// imports this one for that effect alone, so the build stops here rather
// than on some undefined name further on.
package linuxonly
