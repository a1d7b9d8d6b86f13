package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// errUnsupportedMediaType classes requests in a format or encoding the
// endpoint does not speak (HTTP 415).
var errUnsupportedMediaType = errors.New("unsupported media type")

// writeStatus maps an error of the push path to an HTTP status and whether
// the client should retry later. It is the one place where write errors
// become status codes:
//
//   - unsupported Content-Type or Content-Encoding: 415;
//   - model.ErrBadData (undecodable body, bad parameter, or a request the
//     Pusher refused as a whole): 400, never worth retrying;
//   - model.ErrTooLarge: 413;
//   - model.ErrOverloaded: 429 with Retry-After;
//   - model.ErrUnavailable and any other error: 503 with Retry-After, which
//     Prometheus senders retry, so nothing is lost while storage is down.
func writeStatus(err error) (code int, retry bool) {
	switch {
	case errors.Is(err, errUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, false
	case errors.Is(err, model.ErrBadData):
		return http.StatusBadRequest, false
	case errors.Is(err, model.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, false
	case errors.Is(err, model.ErrOverloaded):
		return http.StatusTooManyRequests, true
	default:
		return http.StatusServiceUnavailable, true
	}
}

// writeError answers a push request that stored nothing.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, retry := writeStatus(err)
	if retry {
		w.Header().Set("Retry-After", strconv.Itoa(int(a.cfg.RetryAfter.Seconds())))
	}
	level := slog.LevelDebug
	if code >= 500 {
		level = slog.LevelWarn
	}
	a.logger.Log(r.Context(), level, "push refused", "path", r.URL.Path, "code", code, "err", err)
	http.Error(w, err.Error(), code)
}

// rejectedReason is the vigil_api_rejected_samples_total reason for a
// request refused as a whole.
func rejectedReason(err error) string {
	switch code, _ := writeStatus(err); code {
	case http.StatusRequestEntityTooLarge:
		return reasonTooLarge
	case http.StatusTooManyRequests:
		return reasonOverloaded
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return reasonInvalid
	}
	return reasonUnavailable
}

// push hands a decoded batch to the Pusher and answers: 204 when all of it
// was stored (or dropped as exact duplicates), 400 naming the rejections
// when part of it was refused (the rest is stored), an error status when
// nothing was stored.
func (a *API) push(w http.ResponseWriter, r *http.Request, protocol string, batch []model.Series) {
	n := model.CountSamples(batch)
	a.metrics.received.WithLabelValues(protocol).Add(float64(n))
	if limit := a.cfg.MaxSamplesPerRequest; limit > 0 && n > limit {
		a.metrics.rejected.WithLabelValues(reasonTooLarge).Add(float64(n))
		a.writeError(w, r, fmt.Errorf("%w: %d samples in one request, limit is %d", model.ErrTooLarge, n, limit))
		return
	}
	if n == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	res, err := a.pusher.Push(r.Context(), batch)
	if err != nil {
		a.metrics.rejected.WithLabelValues(rejectedReason(err)).Add(float64(n))
		a.writeError(w, r, err)
		return
	}
	if res.RejectedSamples > 0 {
		a.metrics.countRejected(res)
		a.logger.Debug("push partly rejected", "path", r.URL.Path, "samples", n, "rejected", res.RejectedSamples)
		http.Error(w, strings.TrimSuffix(rejectionText(n, res), "\n"), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// rejectionText is the body of a 400 for a partly stored push: the counts,
// then one line per listed rejection.
func rejectionText(offered int, res model.PushResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "rejected %d of %d samples (%d stored, %d exact duplicates dropped); the valid samples of this request were stored\n",
		res.RejectedSamples, offered, res.Stored, res.Duplicates)
	for _, rej := range res.Rejections {
		fmt.Fprintf(&sb, "reason=%s series=%s", rej.Reason, rej.Series)
		if rej.T != 0 {
			fmt.Fprintf(&sb, " timestamp=%d", rej.T)
		}
		fmt.Fprintf(&sb, ": %s\n", rej.Message)
	}
	if len(res.Rejections) >= model.MaxRejectionDetails && res.RejectedSamples > len(res.Rejections) {
		fmt.Fprintf(&sb, "(only the first %d rejections are listed)\n", len(res.Rejections))
	}
	return sb.String()
}

func (a *API) handleRemoteWrite(w http.ResponseWriter, r *http.Request) {
	if err := checkRemoteWriteHeaders(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	buf, err := a.readBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	batch, err := decodeRemoteWrite(buf.Bytes(), a.cfg.MaxDecodedBodyBytes, a.cfg.MaxSamplesPerRequest)
	putBuffer(buf)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.push(w, r, protoRemoteWrite, batch)
}

// checkRemoteWriteHeaders refuses remote write 2.0 and encodings other
// than snappy, as Prometheus' receiver does (415). A missing
// Content-Encoding is read as snappy, which every sender uses.
func checkRemoteWriteHeaders(r *http.Request) error {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return fmt.Errorf("%w: Content-Encoding %q; remote write needs snappy", errUnsupportedMediaType, enc)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			return fmt.Errorf("%w: Content-Type %q: %v", errUnsupportedMediaType, ct, err)
		}
		if mt != "application/x-protobuf" {
			return fmt.Errorf("%w: Content-Type %q; remote write needs application/x-protobuf", errUnsupportedMediaType, ct)
		}
		if proto := params["proto"]; proto != "" && proto != "prometheus.WriteRequest" {
			return fmt.Errorf("%w: remote write message %q; only remote write 1.0 (prometheus.WriteRequest) is supported", errUnsupportedMediaType, proto)
		}
	}
	return nil
}

func (a *API) handleTextImport(w http.ResponseWriter, r *http.Request) {
	extra, err := extraLabels(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	t := a.now().UnixMilli()
	if ts := r.URL.Query().Get("timestamp"); ts != "" {
		tt, err := parseTime(ts)
		if err != nil {
			a.writeError(w, r, model.BadData("parameter timestamp", err))
			return
		}
		t = tt.UnixMilli()
	}
	body, buf, err := a.readDecodedBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	batch, err := ParseText(body, r.Header.Get("Content-Type"), t, extra)
	putBuffer(buf)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.push(w, r, protoText, batch)
}

func (a *API) handleLineProtocol(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	extra, err := extraLabels(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	body, buf, err := a.readDecodedBody(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	batch, err := ParseLineProtocol(body, q.Get("precision"), a.now().UnixMilli())
	putBuffer(buf)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !extra.IsEmpty() {
		setLabels(batch, extra)
	}
	a.push(w, r, protoInflux, batch)
}

// extraLabels returns the labels given as extra_label=name=value query
// parameters and, for /api/v1/import/prometheus/metrics/job/<job>/...,
// the Pushgateway-style labels of the path. Later ones win.
func extraLabels(r *http.Request) (labels.Labels, error) {
	b := labels.NewBuilder(labels.EmptyLabels())
	if p := r.PathValue("path"); p != "" {
		if err := pathLabels(p, b); err != nil {
			return labels.EmptyLabels(), err
		}
	}
	for _, kv := range r.URL.Query()["extra_label"] {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !model.IsValidLabelName(name) {
			return labels.EmptyLabels(), model.BadData("parameter extra_label",
				fmt.Errorf("%q is not name=value with a valid label name", kv))
		}
		b.Set(name, value)
	}
	return b.Labels(), nil
}

// pathLabels parses "metrics/job/<job>[/<name>/<value>]..." as the
// Pushgateway does, including the "<name>@base64/<base64url value>" form
// for values containing '/'.
func pathLabels(p string, b *labels.Builder) error {
	bad := func(format string, args ...any) error {
		return model.BadData("import path", fmt.Errorf(format, args...))
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(p, "/"), "metrics/")
	if !ok {
		return bad("%q: want /api/v1/import/prometheus/metrics/job/<job>[/<label>/<value>...]", p)
	}
	parts := strings.Split(rest, "/")
	if len(parts)%2 != 0 || len(parts) < 2 || strings.TrimSuffix(parts[0], "@base64") != "job" {
		return bad("%q: want metrics/job/<job> followed by <label>/<value> pairs", p)
	}
	for i := 0; i < len(parts); i += 2 {
		name, value := parts[i], parts[i+1]
		if n, ok := strings.CutSuffix(name, "@base64"); ok {
			v, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
			if err != nil {
				return bad("label %q: invalid base64url value %q: %v", n, value, err)
			}
			name, value = n, string(v)
		}
		if !model.IsValidLabelName(name) {
			return bad("invalid label name %q in path", name)
		}
		if name == "job" && value == "" {
			return bad("empty job name in path")
		}
		b.Set(name, value)
	}
	return nil
}

// setLabels sets every label of extra on every series of batch.
func setLabels(batch []model.Series, extra labels.Labels) {
	b := labels.NewBuilder(labels.EmptyLabels())
	for i := range batch {
		b.Reset(batch[i].Labels)
		extra.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		batch[i].Labels = b.Labels()
	}
}

// bodyBufs recycles request body buffers; decoders copy what they keep.
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuffer keeps rare huge bodies from staying in the pool.
const maxPooledBuffer = 4 << 20

func putBuffer(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	bodyBufs.Put(b)
}

// readBody reads the request body as sent, up to MaxBodyBytes.
func (a *API) readBody(r *http.Request) (*bytes.Buffer, error) {
	limit := a.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: body of %d bytes, limit is %d", model.ErrTooLarge, r.ContentLength, limit)
	}
	buf := bodyBufs.Get().(*bytes.Buffer)
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		putBuffer(buf)
		return nil, model.BadData("request body", fmt.Errorf("read after %d bytes: %w", n, err))
	}
	if n > limit {
		putBuffer(buf)
		return nil, fmt.Errorf("%w: body larger than the limit of %d bytes", model.ErrTooLarge, limit)
	}
	return buf, nil
}

// readDecodedBody reads the body and removes a gzip or zstd
// Content-Encoding, keeping the result within MaxDecodedBodyBytes. The
// returned buffer, if not nil, holds the data until putBuffer.
func (a *API) readDecodedBody(r *http.Request) ([]byte, *bytes.Buffer, error) {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity", "gzip", "x-gzip", "zstd":
	default:
		return nil, nil, fmt.Errorf("%w: Content-Encoding %q; use gzip, zstd or none", errUnsupportedMediaType, enc)
	}
	raw, err := a.readBody(r)
	if err != nil {
		return nil, nil, err
	}
	if enc == "" || enc == "identity" {
		return raw.Bytes(), raw, nil
	}
	defer putBuffer(raw)
	var dec io.Reader
	switch enc {
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(raw.Bytes()), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(a.cfg.MaxDecodedBodyBytes)+1))
		if err != nil {
			return nil, nil, model.BadData("zstd body", err)
		}
		defer zr.Close()
		dec = zr
	default:
		gr, err := gzip.NewReader(bytes.NewReader(raw.Bytes()))
		if err != nil {
			return nil, nil, model.BadData("gzip body", err)
		}
		dec = gr
	}
	out := bodyBufs.Get().(*bytes.Buffer)
	limit := a.cfg.MaxDecodedBodyBytes
	n, err := out.ReadFrom(io.LimitReader(dec, limit+1))
	if err != nil {
		putBuffer(out)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, nil, fmt.Errorf("%w: %s body decodes to more than %d bytes", model.ErrTooLarge, enc, limit)
		}
		return nil, nil, model.BadData(enc+" body", fmt.Errorf("corrupt after %d decoded bytes: %w", n, err))
	}
	if n > limit {
		putBuffer(out)
		return nil, nil, fmt.Errorf("%w: %s body decodes to more than %d bytes", model.ErrTooLarge, enc, limit)
	}
	return out.Bytes(), out, nil
}
