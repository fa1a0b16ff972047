// Command sockplay-login is the login plugin of sockplay: the tutorial's
// user|password login with hashed passwords and throttling. Run by hand it is
// the tool that manages the accounts file and the protocol's client. See
// README.md beside this file.
package main

import "github.com/sockplay/sockplay/sdk"

func main() { sdk.Main(Plugin()) }
