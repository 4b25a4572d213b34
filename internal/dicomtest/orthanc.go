//go:build unix

package dicomtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Orthanc, the open-source DICOM server of the Debian package orthanc, as
// an interoperability peer: started in the background on free loopback
// ports with a configuration of its own in a temporary directory, driven
// through its REST API.

const (
	// OrthancPath is where the Debian package orthanc installs the server.
	OrthancPath = "/usr/sbin/Orthanc"
	// OrthancPackage is the Debian package that provides it.
	OrthancPackage = "orthanc"
	// OrthancLifetime bounds a started Orthanc; it is killed at the end of
	// its test in any case.
	OrthancLifetime = 5 * time.Minute
	// orthancStartTimeout bounds the wait for its REST API.
	orthancStartTimeout = 30 * time.Second
	// orthancRequestTimeout bounds one REST request.
	orthancRequestTimeout = 60 * time.Second
)

// OrthancModality is a remote DICOM modality Orthanc knows.
type OrthancModality struct {
	AET    string
	Host   string // "" : 127.0.0.1
	Port   int
	UseTLS bool // Orthanc's associations towards it use DICOM TLS
}

// OrthancConfig configures a started Orthanc.
type OrthancConfig struct {
	AET        string                     // "" : ORTHANC
	DicomPort  int                        // 0 : a free port
	Modalities map[string]OrthancModality // by Orthanc's symbolic name
	// DICOM TLS: PEM files of Orthanc's certificate and key (used as
	// client and server), and of the certificates it trusts.
	TLSCertificate, TLSPrivateKey, TLSTrusted string
	// TLSServer makes Orthanc's own DICOM listener TLS only.
	TLSServer bool
	// Extra are more configuration keys, overriding the defaults.
	Extra map[string]any
}

// Orthanc is a running Orthanc.
type Orthanc struct {
	AET       string
	DicomPort int
	HTTPPort  int
	URL       string // http://127.0.0.1:HTTPPort
	Dir       string // its configuration, storage and index

	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *syncBuffer
	done   chan struct{}
	err    error
	client *http.Client
}

// OrthancBinary returns the path of the Orthanc server, or fails the test
// saying to install the Debian package: never skipped.
func OrthancBinary(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(OrthancPath); err != nil {
		t.Fatalf("Orthanc not found (%v): install the Debian package %s (apt-get install %s)", err, OrthancPackage, OrthancPackage)
	}
	return OrthancPath
}

// StartOrthanc starts Orthanc with cfg on free 127.0.0.1 ports and waits
// until its REST API answers GET /system. When it exits before (a port
// was taken meanwhile) it is started again on other ports, up to three
// times. Its process group is killed when the test ends, and its log shown
// if the test failed.
func StartOrthanc(t testing.TB, cfg OrthancConfig) *Orthanc {
	t.Helper()
	path := OrthancBinary(t)
	if cfg.AET == "" {
		cfg.AET = "ORTHANC"
	}
	var last *Orthanc
	for attempt := 0; attempt < 3; attempt++ {
		dport := cfg.DicomPort
		if dport == 0 {
			dport = FreePort(t)
		}
		o := &Orthanc{AET: cfg.AET, DicomPort: dport, HTTPPort: FreePort(t), Dir: t.TempDir(),
			out: &syncBuffer{}, done: make(chan struct{}), client: &http.Client{Timeout: orthancRequestTimeout}}
		o.URL = "http://127.0.0.1:" + strconv.Itoa(o.HTTPPort)
		conf := filepath.Join(o.Dir, "orthanc.json")
		b, err := json.MarshalIndent(orthancJSON(cfg, o), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, b, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), OrthancLifetime)
		o.cancel = cancel
		o.cmd = groupCmd(ctx, path, []string{"--verbose", conf})
		o.cmd.Dir = o.Dir
		o.cmd.Stdout, o.cmd.Stderr = o.out, o.out
		if err := o.cmd.Start(); err != nil {
			cancel()
			t.Fatalf("starting %s: %v", path, err)
		}
		go func() {
			o.err = o.cmd.Wait()
			close(o.done)
		}()
		if o.waitReady() {
			t.Cleanup(func() {
				o.Stop()
				if t.Failed() {
					t.Logf("Orthanc log:\n%s", o.Output())
				}
			})
			return o
		}
		o.Stop()
		last = o
	}
	t.Fatalf("Orthanc did not start (%v); its output:\n%s", last.err, last.Output())
	return nil
}

// orthancJSON is the configuration of o.
func orthancJSON(cfg OrthancConfig, o *Orthanc) map[string]any {
	mods := map[string]any{}
	for name, m := range cfg.Modalities {
		host := m.Host
		if host == "" {
			host = "127.0.0.1"
		}
		mods[name] = map[string]any{"AET": m.AET, "Host": host, "Port": m.Port, "UseDicomTls": m.UseTLS}
	}
	c := map[string]any{
		"Name":                              "dicomshield-test",
		"StorageDirectory":                  filepath.Join(o.Dir, "storage"),
		"IndexDirectory":                    filepath.Join(o.Dir, "index"),
		"StorageCompression":                false,
		"Plugins":                           []string{},
		"LuaScripts":                        []string{},
		"HttpServerEnabled":                 true,
		"HttpPort":                          o.HTTPPort,
		"RemoteAccessAllowed":               false,
		"AuthenticationEnabled":             false,
		"SslEnabled":                        false,
		"DicomServerEnabled":                true,
		"DicomAet":                          o.AET,
		"DicomPort":                         o.DicomPort,
		"DicomCheckCalledAet":               false,
		"DicomAlwaysAllowEcho":              true,
		"DicomAlwaysAllowStore":             true,
		"DicomCheckModalityHost":            false,
		"DicomModalities":                   mods,
		"DicomModalitiesInDatabase":         false,
		"DicomScuTimeout":                   10,
		"DicomAssociationCloseDelay":        0,
		"SaveJobs":                          false,
		"ExecuteLuaEnabled":                 false,
		"HttpRequestTimeout":                30,
		"StableAge":                         1,
		"DicomTlsEnabled":                   cfg.TLSServer,
		"DicomTlsRemoteCertificateRequired": true,
	}
	if cfg.TLSCertificate != "" {
		c["DicomTlsCertificate"] = cfg.TLSCertificate
		c["DicomTlsPrivateKey"] = cfg.TLSPrivateKey
		c["DicomTlsTrustedCertificates"] = cfg.TLSTrusted
	}
	for k, v := range cfg.Extra {
		c[k] = v
	}
	return c
}

// waitReady waits until GET /system answers 200, and reports whether it
// did before Orthanc exited or the start timeout.
func (o *Orthanc) waitReady() bool {
	deadline := time.Now().Add(orthancStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-o.done:
			return false
		default:
		}
		resp, err := o.client.Get(o.URL + "/system")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Output returns what Orthanc logged so far.
func (o *Orthanc) Output() string { return o.out.String() }

// Stop kills Orthanc's process group and waits for it. It may be called
// more than once.
func (o *Orthanc) Stop() {
	select {
	case <-o.done:
	default:
		_ = killGroup(o.cmd)
		<-o.done
	}
	o.cancel()
	o.client.CloseIdleConnections()
}

// do runs one REST request and returns the body of a 2xx answer, or an
// error with the status and body of any other.
func (o *Orthanc) do(method, path string, body []byte, contentType string) ([]byte, error) {
	req, err := http.NewRequest(method, o.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("orthanc: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// Get runs GET path and returns the body.
func (o *Orthanc) Get(path string) ([]byte, error) { return o.do(http.MethodGet, path, nil, "") }

// Post runs POST path with body (JSON, or a DICOM file) and returns the
// answer's body.
func (o *Orthanc) Post(path string, body []byte) ([]byte, error) {
	ct := "application/json"
	if len(body) >= 132 && string(body[128:132]) == "DICM" {
		ct = "application/dicom"
	}
	return o.do(http.MethodPost, path, body, ct)
}

// Delete runs DELETE path.
func (o *Orthanc) Delete(path string) error {
	_, err := o.do(http.MethodDelete, path, nil, "")
	return err
}

// GetJSON runs GET path and decodes the JSON answer into v; it fails the
// test on error.
func (o *Orthanc) GetJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := o.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("orthanc: GET %s: %v: %s", path, err, b)
	}
}

// Upload posts the Part 10 file at file to /instances and returns
// Orthanc's instance ID; it fails the test on error.
func (o *Orthanc) Upload(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := o.Post("/instances", b)
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ ID, Status string }
	if err := json.Unmarshal(ans, &r); err != nil || r.ID == "" {
		t.Fatalf("orthanc: POST /instances answered %s (%v)", ans, err)
	}
	return r.ID
}

// Instances returns the IDs of the instances Orthanc holds.
func (o *Orthanc) Instances(t testing.TB) []string {
	t.Helper()
	var ids []string
	o.GetJSON(t, "/instances", &ids)
	return ids
}

// InstanceByUID returns Orthanc's ID of the instance with SOP Instance UID
// uid, or "" when it does not hold it.
func (o *Orthanc) InstanceByUID(t testing.TB, uid string) string {
	t.Helper()
	q, _ := json.Marshal(map[string]any{"Level": "Instance", "Query": map[string]string{"SOPInstanceUID": uid}})
	ans, err := o.Post("/tools/find", q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := json.Unmarshal(ans, &ids); err != nil {
		t.Fatalf("orthanc: /tools/find answered %s: %v", ans, err)
	}
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// File returns the stored Part 10 file of the instance id.
func (o *Orthanc) File(t testing.TB, id string) []byte {
	t.Helper()
	b, err := o.Get("/instances/" + id + "/file")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OrthancDefaults reads the security-relevant DICOM options from the
// default configuration the installed Orthanc writes itself (Orthanc
// --config=FILE), so that "default Orthanc" in the lab is this version's
// real default and not what we believe it to be.
func OrthancDefaults(t *testing.T) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "default.json")
	if out, err := exec.Command(OrthancBinary(t), "--config="+path).CombinedOutput(); err != nil {
		t.Fatalf("Orthanc --config: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if err := json.Unmarshal(stripJSONComments(b), &all); err != nil {
		t.Fatalf("Orthanc's default configuration: %v", err)
	}
	keep := map[string]any{}
	for k, v := range all {
		if _, ok := v.(bool); ok && strings.HasPrefix(k, "Dicom") && k != "DicomTlsEnabled" && k != "DicomServerEnabled" && k != "DicomModalitiesInDatabase" {
			keep[k] = v
		}
	}
	for _, k := range []string{"DicomAlwaysAllowStore", "DicomAlwaysAllowFind", "DicomCheckCalledAet"} {
		if _, ok := keep[k]; !ok {
			t.Fatalf("Orthanc's default configuration has no %s", k)
		}
	}
	return keep
}

// stripJSONComments removes // and /* */ comments outside strings.
func stripJSONComments(b []byte) []byte {
	var out []byte
	inStr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inStr:
			out = append(out, c)
			if c == '\\' && i+1 < len(b) {
				i++
				out = append(out, b[i])
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
			out = append(out, c)
		case c == '/' && i+1 < len(b) && b[i+1] == '/':
			for i < len(b) && b[i] != '\n' {
				i++
			}
			out = append(out, '\n')
		case c == '/' && i+1 < len(b) && b[i+1] == '*':
			i += 2
			for i+1 < len(b) && !(b[i] == '*' && b[i+1] == '/') {
				i++
			}
			i++
		default:
			out = append(out, c)
		}
	}
	return out
}

// LoadPatients posts one instance for each study of each patient of ps
// through the REST API and returns the number of studies.
func (o *Orthanc) LoadPatients(t testing.TB, ps []Patient) int {
	t.Helper()
	n := 0
	for _, p := range ps {
		for range p.Studies {
			if _, err := o.Post("/instances", p.StudyFile(t)); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}
