package server

import (
	"context"
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document describing every route.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func serveOpenAPI(c *gin.Context) { c.Data(http.StatusOK, "application/json", openAPI) }

// HealthResponse is GET /healthz and GET /readyz.
type HealthResponse struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func (s *Server) healthz(c *gin.Context) { c.JSON(http.StatusOK, HealthResponse{Status: "ok"}) }

// readyz is ready when the store answers within the decision budget, every
// changelog follower is current and the store reports no lost data. The
// answer never holds the store's error text or addresses: they are logged.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.DecisionBudget)
	defer cancel()
	if _, err := s.st.Settings(ctx); err != nil {
		c.Error(err) // logged, never shown
		if _, code := statusOf(err); code == codeDataLoss {
			failCode(c, http.StatusServiceUnavailable, codeDataLoss, "", "%s", safeDetails[codeDataLoss])
			return
		}
		failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "store unreachable or slower than the decision budget: answers fail closed")
		return
	}
	st := s.client.Stats()
	if st.DataLoss {
		failCode(c, http.StatusServiceUnavailable, codeDataLoss, "", "%d changelogs report lost data: %s", st.DataLossLogs, safeDetails[codeDataLoss])
		return
	}
	if !st.Verified {
		failCode(c, http.StatusServiceUnavailable, codeUnavailable, "", "%d changelog followers not current (oldest confirmation %v ago): answers fail closed", st.UnverifiedLogs, st.Lag.Round(1e6))
		return
	}
	c.JSON(http.StatusOK, HealthResponse{Status: "ready"})
}
