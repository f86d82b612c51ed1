package ipc

// This package needs Linux: elsewhere the build stops in this import.
import _ "github.com/clusterd/clusterd/internal/linuxonly"
