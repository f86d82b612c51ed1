//go:build ignore

// idleconns opens N keep-alive connections (TLS with -tls) to ADDR, makes one request on
// each so the server has served it, then holds them idle until its stdin
// closes. Used by idle.sh to measure a server's memory per idle connection.
//
//	go run idleconns.go -addr 127.0.0.1:8080 -n 10000
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	n := flag.Int("n", 10000, "connections")
	useTLS := flag.Bool("tls", false, "speak TLS (the certificate is not checked)")
	flag.Parse()
	req := []byte("GET / HTTP/1.1\r\nHost: " + *addr + "\r\n\r\n")
	conns := make([]net.Conn, 0, *n)
	for i := 0; i < *n; i++ {
		var c net.Conn
		var err error
		if *useTLS {
			c, err = tls.Dial("tcp", *addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		} else {
			c, err = net.Dial("tcp", *addr)
		}
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		if _, err := c.Write(req); err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conns = append(conns, c)
	}
	_, _ = os.Stdout.WriteString("open " + strconv.Itoa(len(conns)) + "\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
