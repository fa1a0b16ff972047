// Command sockplay-filexfer is the file transfer plugin of sockplay, and run
// by hand its client. See README.md and PROTOCOL.md beside this file.
package main

import "github.com/sockplay/sockplay/sdk"

func main() { sdk.Main(Plugin()) }
