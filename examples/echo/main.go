// Command echo is an Echo (labstack/echo) application that runs unchanged
// under clusterd: echo.Echo is an http.Handler, so clusterd.RunHTTP serves
// it from every worker's event loop.
//
//	go run ./echo --listen 127.0.0.1:8080 --workers 2
//
// Routes:
//
//	GET  /users/:id   a user as JSON; id must be a number
//	POST /users       binds a JSON user {"name"} and answers 201 with it
//	GET  /panic       a handler that panics: the Recover middleware answers 500
package main

import (
	"errors"
	"net/http"
	"os"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/clusterd/clusterd/examples/internal/examplemain"
)

func main() {
	examplemain.Serve(examplemain.Flags(), newApp())
}

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func newApp() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.Use(middleware.Recover())
	e.GET("/users/:id", func(c echo.Context) error {
		id, err := strconv.Atoi(c.Param("id"))
		if err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, "id must be a number")
		}
		return c.JSON(http.StatusOK, map[string]any{"id": id, "name": "user" + c.Param("id"), "worker": os.Getpid()})
	})
	e.POST("/users", func(c echo.Context) error {
		var u user
		if err := c.Bind(&u); err != nil {
			return err
		}
		if u.Name == "" {
			return echo.NewHTTPError(http.StatusBadRequest, "name is required")
		}
		u.ID = 1
		return c.JSON(http.StatusCreated, u)
	})
	e.GET("/panic", func(c echo.Context) error { panic(errors.New("something broke")) })
	return e
}
