// Command netprobe is the test cluster's network probe image: the end-to-end tests run it as a client
// pod (or as an ephemeral container inside a data-plane pod, to borrow that pod's network identity)
// and exec into it to try connections, so that what a NetworkPolicy admits or refuses is observed
// from where it applies. One static binary, no shell; pods never pull it.
//
//	netprobe wait                          hold the container open until SIGTERM (its main process)
//	netprobe serve PORT                    answer HTTP 200 "netprobe" on PORT (a destination to aim at)
//	netprobe dial HOST:PORT                open one TCP connection
//	netprobe lookup NAME                   resolve NAME with the pod's resolver
//	netprobe http [-X METHOD] [-H K:V] [-d BODY] URL    one HTTP request
//
// Every probe prints one line starting with its outcome — "ok", "refused", "timeout", "unreachable"
// or "error" — and exits 0 for ok, 1 otherwise: the tests read the line, so that a refused
// connection is told apart from a timeout or a failure of the probe itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: netprobe wait | serve PORT | dial HOST:PORT | lookup NAME | http [-X M] [-H K:V] [-d BODY] URL")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "wait":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		<-ctx.Done()
	case "serve":
		if len(args) != 1 {
			fail("serve takes one PORT")
		}
		srv := &http.Server{Addr: ":" + args[0], ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "netprobe\n") })}
		if err := srv.ListenAndServe(); err != nil {
			fail(err.Error())
		}
	case "dial":
		if len(args) != 1 {
			fail("dial takes one HOST:PORT")
		}
		report(dial(args[0]))
	case "lookup":
		if len(args) != 1 {
			fail("lookup takes one NAME")
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
		if err != nil {
			report("", err)
		}
		report(strings.Join(addrs, ","), nil)
	case "http":
		report(request(args))
	default:
		fail("unknown probe " + os.Args[1])
	}
}

// timeout bounds every probe. A NetworkPolicy that refuses answers at once (the enforcer rejects),
// so a probe that runs into it reports a timeout, which the tests do not count as a refusal.
const timeout = 5 * time.Second

func dial(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return "from " + conn.LocalAddr().String() + " to " + conn.RemoteAddr().String(), nil
}

func request(args []string) (string, error) {
	fs := flag.NewFlagSet("http", flag.ContinueOnError)
	method := fs.String("X", http.MethodGet, "method")
	body := fs.String("d", "", "request body")
	var headers headerList
	fs.Var(&headers, "H", "header K:V (repeatable)")
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		return "", errors.New("http takes one URL")
	}
	req, err := http.NewRequest(*method, fs.Arg(0), strings.NewReader(*body))
	if err != nil {
		return "", err
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return "", fmt.Errorf("header %q is not K:V", h)
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Sprintf("status %d %s", resp.StatusCode, strings.Join(strings.Fields(string(b)), " ")), nil
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ",") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// report prints the outcome line and exits.
func report(detail string, err error) {
	if err == nil {
		fmt.Println("ok", detail)
		os.Exit(0)
	}
	fmt.Println(outcome(err), err)
	os.Exit(1)
}

// outcome classifies a failed probe: a rejected connection, a silent drop, no route, or anything else.
func outcome(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	default:
		return "error"
	}
}

func fail(msg string) {
	fmt.Println("error", msg)
	os.Exit(2)
}
