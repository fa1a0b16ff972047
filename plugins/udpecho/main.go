// Command sockplay-udpecho is the UDP echo plugin of sockplay, and run by hand
// its client. See README.md beside this file.
package main

import "github.com/sockplay/sockplay/sdk"

func main() { sdk.Main(Plugin()) }
