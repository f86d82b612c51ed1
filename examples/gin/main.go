// Command gin is a gin application that runs unchanged under clusterd:
// gin.Engine is an http.Handler, so clusterd.RunHTTP serves it from every
// worker's event loop.
//
//	go run ./gin --listen 127.0.0.1:8080 --workers 2
//
// Routes:
//
//	GET  /users/:id   a user as JSON; id must be a number
//	POST /users       binds a JSON user {"name"} and answers 201 with it
//	GET  /panic       a handler that panics: gin's Recovery answers 500
package main

import (
	"net/http"
	"os"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/clusterd/clusterd/examples/internal/examplemain"
)

func main() {
	opts := examplemain.Flags()
	gin.SetMode(gin.ReleaseMode)
	examplemain.Serve(opts, newApp())
}

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name" binding:"required"`
}

func newApp() *gin.Engine {
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/users/:id", func(c *gin.Context) {
		id, err := strconv.Atoi(c.Param("id"))
		if err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": "id must be a number"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"id": id, "name": "user" + c.Param("id"), "worker": os.Getpid()})
	})
	r.POST("/users", func(c *gin.Context) {
		var u user
		if err := c.ShouldBindJSON(&u); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		u.ID = 1
		c.JSON(http.StatusCreated, u)
	})
	r.GET("/panic", func(c *gin.Context) { panic("something broke") })
	return r
}
