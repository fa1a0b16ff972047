package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sockplay/sockplay/host/internal/observe"
)

// serve runs an endpoint on 127.0.0.1:0 with token ("" for none).
func serve(t *testing.T, token string) *Server {
	t.Helper()
	o := observe.New(observe.Config{})
	o.Add("echo", true)
	s, err := Listen(Config{Addr: "127.0.0.1:0", Token: token, Observer: o,
		Status: func() any { return map[string]any{"plugins": []any{}} },
		States: func() []observe.PluginState { return nil },
		Logger: nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Serve()
	t.Cleanup(s.Close)
	return s
}

// do sends method path to s with the Host header host ("" for the bound
// address) and the extra headers, and returns the status and body.
func do(t *testing.T, s *Server, method, path, host string, headers ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "" // perhaps a stream, which does not end
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// The endpoint without a token is not readable by DNS rebinding (issue 27,
// kind 2): a Host that is not this machine's loopback gets 421, a foreign
// Origin 403 (the event streams included), anything but GET and HEAD 405.
func TestAdminRefusesOtherSites(t *testing.T) {
	s := serve(t, "")
	port := s.Addr().String()[strings.LastIndexByte(s.Addr().String(), ':'):]
	for _, tc := range []struct {
		name, method, path, host string
		headers                  []string
		want                     int
	}{
		{"bound address", "GET", "/api/status", "", nil, 200},
		{"localhost", "GET", "/api/status", "localhost" + port, nil, 200},
		{"LOCALHOST, no port", "GET", "/metrics", "LOCALHOST", nil, 200},
		{"another loopback literal", "GET", "/api/status", "127.0.0.2" + port, nil, 200},
		{"IPv6 loopback", "GET", "/api/status", "[::1]" + port, nil, 200},
		{"the page, same origin", "GET", "/api/stream", "", []string{"Origin", "http://127.0.0.1" + port}, 200},
		{"a rebound name", "GET", "/api/status", "attacker.example" + port, nil, 421},
		{"a rebound name, the trace stream", "GET", "/api/trace", "attacker.example" + port, nil, 421},
		{"a rebound name, metrics", "GET", "/metrics", "rebind.attacker.example", nil, 421},
		{"a name under localhost's", "GET", "/api/status", "localhost.attacker.example" + port, nil, 421},
		{"a LAN address", "GET", "/api/status", "192.168.1.10" + port, nil, 421},
		{"a foreign origin, the event stream", "GET", "/api/stream", "", []string{"Origin", "http://attacker.example"}, 403},
		{"a foreign origin, the trace stream", "GET", "/api/trace?plugin=echo", "", []string{"Origin", "https://attacker.example"}, 403},
		{"origin null", "GET", "/api/stream", "", []string{"Origin", "null"}, 403},
		{"POST", "POST", "/api/status", "", nil, 405},
		{"OPTIONS (a preflight)", "OPTIONS", "/api/status", "", []string{"Origin", "http://attacker.example", "Access-Control-Request-Method", "POST"}, 405},
		{"DELETE", "DELETE", "/", "", nil, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, s, tc.method, tc.path, tc.host, tc.headers...)
			if code != tc.want {
				t.Errorf("%s %s Host %q: %d %q, want %d", tc.method, tc.path, tc.host, code, body, tc.want)
			}
		})
	}
}

// With a token the endpoint may be reached by any name (it may serve
// outside loopback): the token guards it; a foreign Origin is still refused.
func TestAdminTokenAnyHost(t *testing.T) {
	s := serve(t, "secret")
	if code, _ := do(t, s, "GET", "/api/status", "sockplay.example.net", "Authorization", "Bearer secret"); code != 200 {
		t.Errorf("with the token, by name: %d, want 200", code)
	}
	if code, _ := do(t, s, "GET", "/api/status", "sockplay.example.net"); code != 401 {
		t.Errorf("without the token: %d, want 401", code)
	}
	if code, _ := do(t, s, "GET", "/api/stream", "", "Authorization", "Bearer secret", "Origin", "http://attacker.example"); code != 403 {
		t.Errorf("with the token, a foreign origin: %d, want 403", code)
	}
}

// Every answer forbids framing and embedding by another origin.
func TestAdminHeaders(t *testing.T) {
	s := serve(t, "")
	resp, err := http.Get("http://" + s.Addr().String() + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "Cross-Origin-Resource-Policy": "same-origin",
		"Access-Control-Allow-Origin": ""} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q has no frame-ancestors 'none'", csp)
	}
}
