// Package proxy is the HTTP face of logto-proxy: the upstream-compatible
// routes under /api, authentication, permission gates, the webhook receiver,
// health and metrics. It turns HTTP into questions for the hierarchy views and
// answers in the upstream backend's exact wire shapes.
package proxy

import "github.com/labstack/echo/v4"

// Envelope is the upstream backend's response shape, used for every JSON
// answer including errors, so that the dashboard's client code (which reads
// code, message and data) works unchanged.
type Envelope struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

// respond writes an envelope whose code mirrors the HTTP status, as upstream.
func respond(c echo.Context, status int, message string, data any) error {
	return c.JSON(status, Envelope{Code: status, Message: message, Data: data})
}

// fail writes a generic upstream error: {"code":N,"message":"…","data":null}.
func fail(c echo.Context, status int, message string) error {
	return respond(c, status, message, nil)
}
