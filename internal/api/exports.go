package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/workflows"
)

// exportResponse is POST /exports' answer.
type exportResponse struct {
	ExportID   string `json:"export_id"`
	WorkflowID string `json:"workflow_id"`
	StatusURL  string `json:"status_url"`
}

// createExport starts an export of the parameters given as a JSON object,
// a form or the query string: 202 for a new export, 200 with the running
// one for the same parameters (the caller's pii scope included).
func (s *Server) createExport(w http.ResponseWriter, r *http.Request) {
	values, ok := exportValues(w, r)
	if !ok {
		return
	}
	p, err := export.ParseParams(values, auth.ScopesFrom(r.Context()).Has(auth.PII))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	job, created, err := s.Exports.Start(r.Context(), p)
	if err != nil {
		s.internalError(w, "start export", err)
		return
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	WriteJSON(w, status, exportResponse{ExportID: job.ExportID, WorkflowID: job.WorkflowID, StatusURL: "/exports/" + job.ExportID})
}

// exportValues reads POST /exports' parameters.
func exportValues(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		var body map[string]string
		if !decodeJSON(w, r, &body) {
			return nil, false
		}
		v := url.Values{}
		for k, val := range body {
			v.Set(k, val)
		}
		return v, true
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) || errors.Is(err, os.ErrDeadlineExceeded) {
				writeBodyError(w, err, maxFormBody)
			} else {
				WriteError(w, http.StatusBadRequest, "bad_request", "form body is malformed")
			}
			return nil, false
		}
		return r.Form, true
	case "multipart/form-data":
		// ParseForm leaves a multipart body unread; read its fields
		// here, each parameter once and no file.
		mr, err := r.MultipartReader()
		if err != nil {
			WriteError(w, http.StatusBadRequest, "bad_request", "multipart body: "+err.Error())
			return nil, false
		}
		fields, err := formFields(mr, export.ParamNames, maxFormBody)
		if err != nil {
			writeMultipartError(w, err, maxFormBody)
			return nil, false
		}
		v := r.URL.Query()
		for k, val := range fields {
			v.Set(k, val)
		}
		return v, true
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1)); n > 0 {
		WriteError(w, http.StatusBadRequest, "bad_request", "send the parameters as JSON, a form or the query string")
		return nil, false
	}
	return r.URL.Query(), true
}

// listExports answers GET /exports: newest first, a page at a time. The
// export package's own cursor travels inside the API's opaque one.
func (s *Server) listExports(w http.ResponseWriter, r *http.Request) {
	limit, cursor, ok := page(w, r)
	if !ok {
		return
	}
	after := ""
	if cursor != nil {
		after = cursor.CreatedAt.UTC().Format(time.RFC3339Nano) + "~" + cursor.ID
	}
	jobs, next, err := export.ListJobs(r.Context(), s.DB, limit, after)
	if errors.Is(err, export.ErrBadCursor) {
		WriteError(w, http.StatusBadRequest, "bad_request", "query parameter \"cursor\": "+errBadCursor.Error())
		return
	}
	if err != nil {
		s.internalError(w, "list exports", err)
		return
	}
	if jobs == nil {
		jobs = []export.Job{}
	}
	var nc *pageCursor
	if ts, id, found := strings.Cut(next, "~"); found {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			s.internalError(w, "list exports", err)
			return
		}
		nc = &pageCursor{CreatedAt: t, ID: id}
	}
	writePage(w, "exports", jobs, nc)
}

func (s *Server) getExport(w http.ResponseWriter, r *http.Request) {
	if job, ok := s.exportJob(w, r); ok {
		WriteJSON(w, http.StatusOK, job)
	}
}

// exportFile streams a finished export's file. A file with unmasked fields
// is for pii tokens only.
func (s *Server) exportFile(w http.ResponseWriter, r *http.Request) {
	job, ok := s.exportJob(w, r)
	if !ok {
		return
	}
	if job.PII && !auth.ScopesFrom(r.Context()).Has(auth.PII) {
		WriteError(w, http.StatusForbidden, "forbidden", "this export shows sensitive fields unmasked: it needs a token with the pii scope")
		return
	}
	if job.State != export.StateCompleted {
		WriteError(w, http.StatusConflict, "conflict", "export is "+job.State+", its file is not ready")
		return
	}
	f, err := s.Exports.Open(r.Context(), job)
	if err != nil {
		s.internalError(w, "open export file", err)
		return
	}
	defer f.Close()
	p, err := job.Params()
	if err != nil {
		s.internalError(w, "read export", err)
		return
	}
	setFileHeaders(w, p, job.Filename())
	if job.FileBytes != nil {
		w.Header().Set("Content-Length", strconv.FormatInt(*job.FileBytes, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		if r.Context().Err() == nil {
			s.Logger.Error("export file aborted", "export_id", job.ExportID, "error", err.Error())
		}
		panic(http.ErrAbortHandler) // a broken transfer, never a short file
	}
}

func (s *Server) cancelExport(w http.ResponseWriter, r *http.Request) {
	job, ok := s.exportJob(w, r)
	if !ok {
		return
	}
	if job.State != export.StateRunning {
		WriteError(w, http.StatusConflict, "conflict", "export is "+job.State+", not RUNNING")
		return
	}
	if err := s.Exports.Cancel(r.Context(), job.ExportID); err != nil {
		s.internalError(w, "cancel export", err)
		return
	}
	WriteJSON(w, http.StatusAccepted, map[string]string{"export_id": job.ExportID,
		"workflow_id": workflows.ExportWorkflowID(job.ExportID), "state": "CANCELLING"})
}

func (s *Server) exportJob(w http.ResponseWriter, r *http.Request) (export.Job, bool) {
	id, ok := jobID(w, r, "export")
	if !ok {
		return export.Job{}, false
	}
	job, err := export.GetJob(r.Context(), s.DB, id)
	if errors.Is(err, export.ErrJobNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no export "+strconv.Quote(r.PathValue("id")))
		return job, false
	}
	if err != nil {
		s.internalError(w, "read export", err)
		return job, false
	}
	return job, true
}
