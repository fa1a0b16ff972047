package main

import (
	"bufio"
	"fmt"
	"testing"

	"github.com/sockplay/sockplay/sdk/sdktest"
)

func TestUpper(t *testing.T) {
	in := sdktest.Start(t, Plugin(), map[string]string{"prefix": "> "})
	c := in.Dial(t)
	fmt.Fprintln(c, "hello")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "> HELLO\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}
