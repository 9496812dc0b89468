// Command baregin is the peer of scripts/bench-http.sh: a bare gin engine
// (gin.New, no middleware) whose GET /v1/users/:id/decision answers a fixed
// JSON body, the bytes recguard serve gave for one user. It is the raw limit
// of a gin handler on this machine: no authentication, no metrics, no
// decision, no signing.
//
//	baregin --addr 127.0.0.1:18081 --body decision.json
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	bodyFile := flag.String("body", "", "file holding the JSON body to answer (required)")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil || len(body) == 0 {
		fmt.Fprintf(os.Stderr, "baregin: --body: %v (want a non-empty file)\n", err)
		os.Exit(2)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.GET("/v1/users/:id/decision", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	})
	srv := &http.Server{Addr: *addr, Handler: e, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "baregin:", err)
		os.Exit(1)
	}
}
