// Package buildinfo reports what the running binary was built from: the
// module version and the VCS revision Go stamps into every build, for
// `--version` on both binaries and GET /version.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Info is what a build says about itself.
type Info struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// Read returns the running binary's build information. A build without
// any (rare: stripped binaries) reports version "(unknown)".
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Module: "github.com/acme/payments", Version: "(unknown)"}
	}
	info := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Module == "" {
		info.Module = "github.com/acme/payments"
	}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one-line form `--version` prints after the program name:
// "v1.2.3 (rev 0123abcd, modified, go1.26.8)".
func (i Info) String() string {
	var extra []string
	if i.Revision != "" {
		rev := i.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		extra = append(extra, "rev "+rev)
	}
	if i.Modified {
		extra = append(extra, "modified")
	}
	if i.GoVersion != "" {
		extra = append(extra, i.GoVersion)
	}
	if len(extra) == 0 {
		return i.Version
	}
	return i.Version + " (" + strings.Join(extra, ", ") + ")"
}
