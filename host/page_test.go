package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sockplay/sockplay/internal/e2e"
)

// ScreenshotEnv, set to 1, makes TestLivePage copy its 1280x800 screenshot
// to docs/admin-page.png, the one the README shows (and the phone-width one
// to docs/admin-page-phone.png):
//
//	SOCKPLAY_UPDATE_SCREENSHOT=1 go test -run TestLivePage ./host
const screenshotEnv = "SOCKPLAY_UPDATE_SCREENSHOT"

// browser starts Debian's headless Chromium (scripts/setup.sh installs it)
// with a fresh profile in the test's temp dir and no network of its own.
func browser(t *testing.T, width, height int) (context.Context, context.CancelFunc) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the page test (scripts/setup.sh installs Debian's): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // it runs as root here
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	// Chromium writes beside its profile too (~/.config/chromium/Crash
	// Reports, ~/.cache): a test writes only in its temp dirs.
	home := t.TempDir()
	opts = append(opts, chromedp.Env("HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache")))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	return ctx, func() { cancelTimeout(); cancelCtx(); cancelAlloc() }
}

// waitJS polls a JavaScript condition in the page until it is true.
func waitJS(ctx context.Context, t *testing.T, what, cond string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML("main"))
		t.Fatalf("the page never showed %s (%s): %v\n%s", what, cond, err, html)
	}
}

// The live page in real headless Chromium: three connections to echo
// appear without a reload, then a traced line, then their closes; a
// screenshot at 1280x800 and one at phone width.
func TestLivePage(t *testing.T) {
	h := e2e.Start(t, e2e.Config{Enable: []string{"echo", "udpecho"}, Args: []string{"--trace", "echo"}})
	ctx, cancel := browser(t, 1280, 800)
	defer cancel()

	if _, err := chromedp.Run(ctx, chromedp.Navigate(h.Admin)); err != nil {
		t.Fatalf("load %s: %v", h.Admin, err)
	}
	waitJS(ctx, t, "the plugins", `document.querySelector('#plugins tr[data-plugin="echo"]') !== null &&
		document.querySelector('#plugins tr[data-plugin="udpecho"]') !== null &&
		document.querySelector('#live').textContent.includes('live')`)

	var conns []net.Conn
	for i := 1; i <= 3; i++ {
		c := dial(t, h.Addr("echo"))
		line := fmt.Sprintf("hello from client %d\n", i)
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != line {
			t.Fatalf("echo: %q %v", got, err)
		}
		conns = append(conns, c)
	}
	waitJS(ctx, t, "three open connections", `document.querySelectorAll('#conns tbody tr').length === 3 &&
		document.querySelector('#plugins tr[data-plugin="echo"] .conns-active').textContent === '3'`)
	waitJS(ctx, t, "a traced line", `[...document.querySelectorAll('#trace .trec.in pre.text')].some(p => p.textContent.includes('hello from client 2\\n')) &&
		[...document.querySelectorAll('#trace .trec.out pre.text')].some(p => p.textContent.includes('hello from client 3'))`)
	waitJS(ctx, t, "the connects in recent events", `document.querySelectorAll('#events li[data-kind="open"]').length === 3`)

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "admin-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if os.Getenv(screenshotEnv) == "1" {
		root, err := e2e.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "docs", "admin-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range conns {
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	waitJS(ctx, t, "the closes", `document.querySelectorAll('#conns tbody tr').length === 0 &&
		[...document.querySelectorAll('#events li[data-kind="close"]')].filter(li => li.textContent.includes('eof')).length === 3`)

	// Phone width: nothing wider than the screen but the tables' own
	// scrolling boxes.
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Error("at 390 px the page is wider than the screen")
	}
	if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(shot), "admin-page-phone.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv(screenshotEnv) == "1" {
		root, _ := e2e.ModuleRoot()
		if err := os.WriteFile(filepath.Join(root, "docs", "admin-page-phone.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(h.Stderr(), "[ERROR]") {
		t.Errorf("the host logged an error:\n%s", h.Stderr())
	}
	h.Stop(15 * time.Second)
}
