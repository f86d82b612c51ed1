//go:build race

package main

// raceDetector is set when the tests run under the race detector, whose
// shadow memory and slowdown make memory bounds meaningless.
const raceDetector = true
