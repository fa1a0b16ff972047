// Package testplugins holds plugins built only for the project's tests:
// badversion speaks another protocol version, panicky panics on demand,
// crashy exits at once on start, whoami tells each client its address,
// deadlock, written without the SDK, deadlocks its control service on
// demand, and printer prints to stdout while configured and in its handler
// (and, asked to, before sdk.Main).
// They are never installed by make build.
package testplugins
