// dcgm-exporter stand-in: DCGM fields from a counters CSV, served as Prometheus metrics.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BuildVersion is set by `make binary` (-ldflags -X main.BuildVersion=...).
var BuildVersion = "dev"

// DCGM fields this stand-in knows, with the nvidia-smi query that gives their value.
var knownFields = map[string]string{
	"DCGM_FI_DEV_GPU_TEMP":      "temperature.gpu",
	"DCGM_FI_DEV_GPU_UTIL":      "utilization.gpu",
	"DCGM_FI_DEV_MEM_COPY_UTIL": "utilization.memory",
	"DCGM_FI_DEV_FB_FREE":       "memory.free",
	"DCGM_FI_DEV_FB_USED":       "memory.used",
	"DCGM_FI_DEV_POWER_USAGE":   "power.draw",
	"DCGM_FI_DEV_SM_CLOCK":      "clocks.sm",
	"DCGM_FI_DEV_MEM_CLOCK":     "clocks.mem",
}

var defaults = map[string]string{
	"temperature.gpu": "45", "utilization.gpu": "0", "utilization.memory": "0", "memory.free": "22600",
	"memory.used": "0", "power.draw": "16.14", "clocks.sm": "2040", "clocks.mem": "6251",
	"uuid": "GPU-00000000-0000-0000-0000-000000000000", "driver_version": "580.126.09",
}

type counter struct{ field, kind, help string }

func readCounters(path string) ([]counter, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var out []counter
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, ",", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("malformed line in %s: %q", path, line)
		}
		c := counter{strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])}
		if _, ok := knownFields[c.field]; !ok {
			return nil, fmt.Errorf("could not find DCGM field %s", c.field)
		}
		if c.kind != "gauge" && c.kind != "counter" && c.kind != "label" {
			return nil, fmt.Errorf("could not find Prometheus metric type %s", c.kind)
		}
		out = append(out, c)
	}
	return out, scanner.Err()
}

// sample reads the GPU's current values from nvidia-smi (the test bed's fake L4 answers it).
func sample(counters []counter) map[string]string {
	queries := []string{"uuid", "driver_version"}
	for _, c := range counters {
		queries = append(queries, knownFields[c.field])
	}
	values := map[string]string{}
	for k, v := range defaults {
		values[k] = v
	}
	out, err := exec.Command("nvidia-smi", "--query-gpu="+strings.Join(queries, ","),
		"--format=csv,noheader,nounits").Output()
	if err != nil {
		log.Printf("level=warning msg=\"nvidia-smi failed, using defaults\" err=%q", err)
		return values
	}
	fields := strings.Split(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0], ",")
	for i, q := range queries {
		if i < len(fields) {
			values[q] = strings.TrimSpace(fields[i])
		}
	}
	return values
}

func render(counters []counter, values map[string]string, hostname string) string {
	var b strings.Builder
	labels := fmt.Sprintf(`gpu="0",UUID=%q,device="nvidia0",Hostname=%q,DCGM_FI_DRIVER_VERSION=%q`,
		values["uuid"], hostname, values["driver_version"])
	for _, c := range counters {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %s\n", c.field, c.help, c.field, c.kind,
			c.field, labels, values[knownFields[c.field]])
	}
	return b.String()
}

func main() {
	var collectors, address string
	var interval int
	flag.StringVar(&collectors, "f", "/etc/dcgm-exporter/default-counters.csv", "Path to the file with the DCGM fields to collect")
	flag.StringVar(&collectors, "collectors", "/etc/dcgm-exporter/default-counters.csv", "Path to the file with the DCGM fields to collect")
	flag.StringVar(&address, "a", ":9400", "Address of the HTTP server")
	flag.StringVar(&address, "address", ":9400", "Address of the HTTP server")
	flag.IntVar(&interval, "c", 30000, "Interval of time at which point metrics are collected (ms)")
	flag.IntVar(&interval, "collect-interval", 30000, "Interval of time at which point metrics are collected (ms)")
	flag.Parse()

	log.SetFlags(0)
	log.Printf("level=info msg=\"Starting dcgm-exporter\" Version=%s", BuildVersion)
	version, err := initDCGM()
	if err != nil {
		log.Fatalf("level=fatal msg=\"Error initializing DCGM\" err=%q", err.Error())
	}
	log.Printf("level=info msg=\"DCGM successfully initialized!\" dcgm=%s", version)
	counters, err := readCounters(collectors)
	if err != nil {
		log.Fatalf("level=fatal msg=\"Could not read the collectors file\" err=%q", err.Error())
	}
	hostname, _ := os.Hostname()

	var mu sync.Mutex
	// /metrics answers 200 with an empty body until the first collection is done: about 10 s after the
	// start on a real host (guide B-9, "empty first scrape"); then every collect interval (30000 ms by
	// default, the -c/--collect-interval flag of dcgm-exporter's README).
	// DCGM_EXPORTER_DOUBLE_FIRST_COLLECTION_S (the stand-in's own knob, not upstream's) stretches that
	// first wait, so a test on a loaded machine can still look inside it.
	first := 10 * time.Second
	if v, err := strconv.Atoi(os.Getenv("DCGM_EXPORTER_DOUBLE_FIRST_COLLECTION_S")); err == nil && v >= 0 {
		first = time.Duration(v) * time.Second
	}
	body := ""
	go func() {
		time.Sleep(first)
		for {
			text := render(counters, sample(counters), hostname)
			mu.Lock()
			body = text
			mu.Unlock()
			time.Sleep(time.Duration(interval) * time.Millisecond)
		}
	}()
	http.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprint(w, body)
	})
	http.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK\n") })
	log.Printf("level=info msg=\"Starting webserver\" address=%s", address)
	log.Fatal(http.ListenAndServe(address, nil))
}
