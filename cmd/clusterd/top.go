package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/clusterd/clusterd/master"
)

// cmdTop is ctl's live view; it asks the master for its status every
// interval and shows rates between two answers.
const cmdTop = "top"

// top prints the pool every interval, count times (0: until interrupted).
// On a terminal each frame replaces the last.
func top(path string, timeout, interval time.Duration, count int, stdout, stderr io.Writer) int {
	clear := isTerminal(stdout)
	var prev *master.Status
	var prevAt time.Time
	for frame := 0; count == 0 || frame < count; frame++ {
		if frame > 0 {
			time.Sleep(interval)
		}
		resp, err := master.Control(path, master.Request{Cmd: master.CmdStatus}, timeout)
		if err == nil && !resp.OK {
			err = fmt.Errorf("%s", resp.Error)
		}
		if err != nil {
			fmt.Fprintf(stderr, "clusterd ctl top: %v\n", err)
			return 1
		}
		now := time.Now()
		if clear {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J")
		} else if frame > 0 {
			fmt.Fprintln(stdout)
		}
		printTop(stdout, resp.Status, prev, now.Sub(prevAt))
		prev, prevAt = resp.Status, now
	}
	return 0
}

// printTop writes one frame: the pool's totals, then a line per worker;
// requests/s compares each worker with its previous frame ("-" in the first).
func printTop(w io.Writer, st, prev *master.Status, elapsed time.Duration) {
	before := map[int]uint64{}
	if prev != nil {
		for _, x := range prev.Workers {
			before[x.PID] = x.Requests
		}
	}
	var total float64
	var conns int64
	var rss uint64
	rates := make([]string, len(st.Workers))
	for i, x := range st.Workers {
		conns += x.Connections
		rss += x.RSS
		rates[i] = "-"
		if n, ok := before[x.PID]; ok && elapsed > 0 && x.Requests >= n {
			r := float64(x.Requests-n) / elapsed.Seconds()
			total += r
			rates[i] = strconv.FormatFloat(r, 'f', 0, 64)
		}
	}
	m := st.Master
	fmt.Fprintf(w, "clusterd top: master %d, generation %d, %d workers, %.0f req/s, %d connections, %s resident  %s\n",
		m.PID, m.Generation, m.Workers, total, conns, bytesText(rss), time.Now().Format("15:04:05"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ID\tPID\tGEN\tSTATE\tREQ/S\tCONNS\tIN-FLIGHT\tRSS\tREQUESTS\tRESTARTS\tUPTIME\t")
	for i, x := range st.Workers {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%v\t\n", x.ID, x.PID, x.Generation, x.State,
			rates[i], x.Connections, x.InFlight, bytesText(x.RSS), x.Requests, x.Restarts, secs(x.Uptime))
	}
	_ = tw.Flush()
}

// bytesText writes n in KiB, MiB or GiB with one decimal.
func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return strconv.FormatUint(n, 10) + "B"
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
