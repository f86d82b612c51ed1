package main

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/clusterd/clusterd/examples/internal/exampletest"
)

func TestGin(t *testing.T) {
	gin.SetMode(gin.TestMode)
	s := exampletest.Serve(t, newApp(), nil)
	exampletest.Expect(t, s.URL, []exampletest.Exchange{
		{Method: "GET", Path: "/users/42", Status: 200, Body: `"id":42`},
		{Method: "GET", Path: "/users/x", Status: 400, Body: "number"},
		{Method: "POST", Path: "/users", Send: `{"name":"ada"}`, Status: 201, Body: `{"id":1,"name":"ada"}`},
		{Method: "POST", Path: "/users", Send: `{}`, Status: 400, Body: "required"},
		{Method: "GET", Path: "/panic", Status: 500},
		{Method: "GET", Path: "/nope", Status: 404},
	})
}
