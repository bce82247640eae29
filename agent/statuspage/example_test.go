package statuspage_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/floorlink/floorlink/agent/statuspage"
)

// The agent mounts the page at "GET /" beside its own endpoints, which, being more specific,
// keep their paths.
func ExampleHandler() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"gateway":{"id":"gw-1"},"devices":[]}`)
	})
	mux.Handle("GET /", statuspage.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, path := range []string{"/?lang=ko", "/static/app.js", "/api/v1/status", "/favicon.ico"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Output:
	// /?lang=ko 200 text/html; charset=utf-8
	// /static/app.js 200 text/javascript; charset=utf-8
	// /api/v1/status 200 application/json
	// /favicon.ico 404 text/plain; charset=utf-8
}
