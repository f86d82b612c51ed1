// Command mux is a gorilla/mux application that runs unchanged under
// clusterd: mux.Router is an http.Handler, so clusterd.RunHTTP serves it
// from every worker's event loop.
//
//	go run ./mux --listen 127.0.0.1:8080 --workers 2
//
// Routes:
//
//	GET  /users/{id:[0-9]+}   a user as JSON
//	POST /users               a JSON user {"name"}, answered with 201
//	GET  /files/...           the example's own source, through http.FileServer
package main

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/clusterd/clusterd/examples/internal/examplemain"
)

func main() {
	examplemain.Serve(examplemain.Flags(), newApp("."))
}

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func newApp(dir string) *mux.Router {
	r := mux.NewRouter()
	r.HandleFunc("/users/{id:[0-9]+}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(mux.Vars(r)["id"])
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": "user" + mux.Vars(r)["id"], "worker": os.Getpid()})
	}).Methods("GET")
	r.HandleFunc("/users", func(w http.ResponseWriter, r *http.Request) {
		var u user
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&u); err != nil || u.Name == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"name\": ...}"})
			return
		}
		u.ID = 1
		writeJSON(w, http.StatusCreated, u)
	}).Methods("POST")
	r.PathPrefix("/files/").Handler(http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	return r
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
