package protocol

//go:generate bash gen.sh
