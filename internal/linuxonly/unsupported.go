//go:build !linux

package linuxonly

var _ int = "clusterd runs on Linux only (epoll, SCM_RIGHTS, openat2): build with GOOS=linux"
