package main

import (
	"testing"

	"github.com/clusterd/clusterd/examples/internal/exampletest"
)

func TestMux(t *testing.T) {
	s := exampletest.Serve(t, newApp("."), nil)
	exampletest.Expect(t, s.URL, []exampletest.Exchange{
		{Method: "GET", Path: "/users/42", Status: 200, Body: `"id":42`},
		{Method: "GET", Path: "/users/x", Status: 404},
		{Method: "POST", Path: "/users", Send: `{"name":"ada"}`, Status: 201, Body: `{"id":1,"name":"ada"}`},
		{Method: "POST", Path: "/users", Send: `{}`, Status: 400, Body: "name"},
		{Method: "DELETE", Path: "/users/1", Status: 405},
		{Method: "GET", Path: "/files/main.go", Status: 200, Body: "package main"},
	})
}
