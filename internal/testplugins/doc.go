// Package testplugins holds plugins built only for the project's tests:
// badversion speaks another protocol version, panicky panics on demand,
// crashy exits at once on start, whoami tells each client its address, and
// deadlock, written without the SDK, deadlocks its control service on
// demand. They are never installed by make build.
package testplugins
