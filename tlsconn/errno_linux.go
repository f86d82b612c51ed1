package tlsconn

import "golang.org/x/sys/unix"

// accept(2) failures that pass with time.
var (
	errEMFILE  error = unix.EMFILE
	errENFILE  error = unix.ENFILE
	errENOBUFS error = unix.ENOBUFS
	errENOMEM  error = unix.ENOMEM
)
