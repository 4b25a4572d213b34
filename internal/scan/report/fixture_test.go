package report

import (
	"fmt"
	"time"

	"github.com/dicomshield/dicomshield/internal/scan"
)

// storageUIDs are ten storage SOP classes (CT, MR, CR, SC, US, DX, XA,
// NM, PET, RT Plan), more than DefaultMinStorageProposed.
var storageUIDs = []string{
	"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.1",
	"1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.1.1",
	"1.2.840.10008.5.1.4.1.1.12.1", "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.128",
	"1.2.840.10008.5.1.4.1.1.481.5",
}

// services builds a Services map: verification and study-root find
// accepted as asked, and the ten storage classes of which the first
// storageAccepted are accepted.
func services(find bool, storageAccepted int) map[string]scan.Service {
	m := map[string]scan.Service{
		"verification":    {SOPClass: "1.2.840.10008.1.1", Accepted: true},
		"study-root-find": {SOPClass: "1.2.840.10008.5.1.4.1.2.2.1", Accepted: find},
	}
	for i, uid := range storageUIDs {
		m[fmt.Sprintf("storage-%d", i)] = scan.Service{SOPClass: uid, Accepted: i < storageAccepted}
	}
	return m
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func exp(q, r, s string) scan.Exposure { return scan.Exposure{Query: q, Retrieve: r, Store: s} }

const (
	open     = scan.ExposureOpen
	closed   = scan.ExposureClosed
	unproven = scan.ExposureUnproven
)

var (
	findNone   = scan.Finding{ID: "DS-AUTH-NONE", Severity: scan.SeverityCritical, Title: "Any AE title is accepted", Remediation: "Register the peers that may connect and refuse the rest."}
	findQuery  = scan.Finding{ID: "DS-QUERY-OPEN", Severity: scan.SeverityCritical, Title: "A stranger can query patient records", Remediation: "Deny C-FIND to unknown peers."}
	findStore  = scan.Finding{ID: "DS-STORE-OPEN", Severity: scan.SeverityHigh, Title: "A stranger can store images", Remediation: "Accept C-STORE only from registered modalities."}
	findCVE    = scan.Finding{ID: "DS-CVE", Severity: scan.SeverityHigh, Title: "DCMTK 3.6.6 has known vulnerabilities (CVE-2022-2119)", Remediation: "Upgrade DCMTK."}
	findWeak   = scan.Finding{ID: "DS-AUTH-WEAK", Severity: scan.SeverityMedium, Title: "Only the default AE title protects the service", Remediation: "Use an unguessable AE title and an IP filter, better TLS client certificates."}
	findNoTLS  = scan.Finding{ID: "DS-TLS-NONE", Severity: scan.SeverityLow, Title: "No TLS", Remediation: "Serve DICOM over TLS (port 2762)."}
	findTLSOK  = scan.Finding{ID: "DS-TLS-OK", Severity: scan.SeverityInfo, Title: "TLS with client certificates", Remediation: "Nothing to do."}
	findHostil = scan.Finding{ID: "DS-X", Severity: scan.SeverityLow, Title: `<script>alert("x")</script> & <img src=http://evil.example/x>`, Remediation: "</table><a href=\"https://evil.example\">click</a>"}
)

// fixture is a realistic scan: seven DICOM services of various kinds, one
// web server, and seven decoys (two honeypots and a fleet of five
// identical pynetdicom fixtures). MarkDecoys has not run on it.
func fixture() []scan.Result {
	rs := []scan.Result{
		{ // 1: default Orthanc: storage only; accepts every storage class (a sign, not enough)
			Host: "10.1.0.1", Port: 4242, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthNone, AuthDetail: "random AE titles accepted",
			Implementation: scan.Implementation{ClassUID: "1.2.276.0.7230010.3.0.3.6.6", VersionName: "OFFIS_DCMTK_366"},
			Product:        &scan.Product{Name: "Orthanc", Version: "1.9.7", Evidence: "HTTP /system", CVEs: []string{"CVE-2026-5437"}},
			Services:       services(true, 10), Exposure: exp(closed, closed, open),
			Findings: []scan.Finding{findNoTLS, findStore, findNone},
		},
		{ // 2: dcm4chee answering queries, proved
			Host: "10.1.0.2", Port: 104, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthNone,
			Implementation: scan.Implementation{ClassUID: "1.2.40.0.13.1.3", VersionName: "dcm4che-5.31.0"},
			Product:        &scan.Product{Name: "dcm4chee-arc", Version: "5.31.0", Evidence: "implementation version name"},
			Services:       services(true, 5), Exposure: exp(open, open, open),
			Proof:    &scan.Proof{Records: map[string]int{"PATIENT": 1200, "STUDY": 3400}, Fields: map[string]bool{"PatientName": true, "PatientBirthDate": true, "PatientAddress": false}, Get: open, Move: open, MoveAnyDest: open},
			Findings: []scan.Finding{findQuery, findNone, findStore, findNoTLS},
		},
		{ // 3: DCMTK dcmqrscp with its default AE title, count truncated
			Host: "10.1.0.3", Port: 11112, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthWeak, AuthDetail: "only the default AE title ANY-SCP",
			Implementation: scan.Implementation{ClassUID: "1.2.276.0.7230010.3.0.3.6.6", VersionName: "OFFIS_DCMTK_366"},
			Product:        &scan.Product{Name: "DCMTK", Version: "3.6.6", Evidence: "implementation version name OFFIS_DCMTK_366", CVEs: []string{"CVE-2022-2119"}},
			Services:       services(true, 3), Exposure: exp(open, closed, closed),
			Proof:    &scan.Proof{Records: map[string]int{"PATIENT": 50, "STUDY": 75}, Truncated: true, Fields: map[string]bool{"PatientName": true}},
			Findings: []scan.Finding{findWeak, findCVE, findQuery},
		},
		{ // 4: dicomshield: TLS with client certificates, nothing for strangers
			Host: "10.1.0.4", Port: 2762, Time: t0, DICOM: true, Transport: "tls", Auth: scan.AuthStrong,
			TLS: scan.TLSInfo{Enabled: true, Version: "TLS 1.3", ClientCertRequired: true,
				Cert: &scan.CertInfo{Subject: "CN=pacs", Issuer: "CN=dicomshield CA", NotAfter: t0.AddDate(0, 3, 0), KeyType: "ECDSA", KeyBits: 256, SHA256: "aa11"}},
			Product:  &scan.Product{Name: "dicomshield", Version: "0.3.0", Evidence: "implementation version name"},
			Exposure: exp(closed, closed, closed),
			Findings: []scan.Finding{findTLSOK},
		},
		{ // 5: DICOM that timed out before anything could be told
			Host: "10.1.0.5", Port: 104, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthUnknown, Error: "association timed out after 10s",
		},
		{ // 6: a web server
			Host: "10.1.0.6", Port: 8080, Time: t0, Auth: scan.AuthUnknown, Error: "not DICOM: the peer answered with HTTP",
		},
		{ // 7: Orthanc with TLS but no client certificates; query contexts accepted, not proved
			Host: "10.1.0.7", Port: 11112, Time: t0, DICOM: true, Transport: "tls", Auth: scan.AuthNone,
			TLS: scan.TLSInfo{Enabled: true, Version: "TLS 1.2",
				Cert: &scan.CertInfo{Subject: "CN=orthanc", Issuer: "CN=orthanc", SelfSigned: true, NotAfter: t0.AddDate(1, 0, 0), SHA256: "bb22"}},
			Implementation: scan.Implementation{ClassUID: "1.2.276.0.7230010.3.0.3.6.7", VersionName: "OFFIS_DCMTK_367"},
			Product:        &scan.Product{Name: "Orthanc", Version: "1.12.4", Evidence: "HTTP /system"},
			Services:       services(true, 4), Exposure: exp(unproven, closed, open),
			Findings: []scan.Finding{findNone, findStore, findHostil},
		},
		{ // 8: a real Horos, its own UID root
			Host: "10.1.0.8", Port: 104, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthNone,
			Implementation: scan.Implementation{ClassUID: "1.2.276.0.7238010.5.0.3.5.4", VersionName: "OSIRIX"},
			Product:        &scan.Product{Name: "Horos", Evidence: "implementation class UID"},
			Services:       services(true, 6), Exposure: exp(open, closed, open),
			Proof:    &scan.Proof{Records: map[string]int{"PATIENT": 10, "STUDY": -1}},
			Findings: []scan.Finding{findQuery, findNone},
		},
		{ // 9: DICOMHawk's OsiriX profile: a persona on DCMTK 3.6.1's UID, every storage class
			Host: "10.2.0.1", Port: 11112, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthNone,
			Implementation: scan.Implementation{ClassUID: "1.2.276.0.7230010.3.0.3.6.1", VersionName: "OSIRIX001"},
			Product:        &scan.Product{Name: "OsiriX", Evidence: "implementation version name"},
			Services:       services(true, 10), Exposure: exp(open, open, open),
			Proof:    &scan.Proof{Records: map[string]int{"PATIENT": 3, "STUDY": 3}},
			Findings: []scan.Finding{findQuery, findNone},
		},
		{ // 10: Dicompot: no implementation UID, accepts everything
			Host: "10.2.0.2", Port: 11112, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthNone,
			Services: services(true, 10), Exposure: exp(open, unproven, unproven),
			Findings: []scan.Finding{findQuery, findNone},
		},
	}
	// 11-15: five identical pynetdicom fixtures accepting every storage class.
	for i := 1; i <= 5; i++ {
		rs = append(rs, scan.Result{
			Host: fmt.Sprintf("10.3.0.%d", i), Port: 104, Time: t0, DICOM: true, Transport: "plain", Auth: scan.AuthNone,
			Implementation: scan.Implementation{ClassUID: "1.2.826.0.1.3680043.9.3811.2.0.2", VersionName: "PYNETDICOM_202"},
			Product:        &scan.Product{Name: "pynetdicom", Version: "2.0.2", Evidence: "implementation version name"},
			Services:       services(false, 10), Exposure: exp(closed, closed, open),
			Findings: []scan.Finding{findStore, findNone},
		})
	}
	return rs
}

// fixtureFigures is what Summarize must find in the fixture after
// MarkDecoys, computed by hand from the comments above.
var fixtureFigures = Figures{
	Results: 15, NotDICOM: 1, Decoys: 7, Services: 7,
	Auth:     AuthCounts{None: 4, Weak: 1, Strong: 1, Unknown: 1},
	Exposure: ExposureCounts{QueryExposed: 3, QueryUnproven: 1, StorageOnly: 1, Closed: 2},
	Records:  map[string]int{"PATIENT": 1260, "STUDY": 3475},
	Proved:   3, Truncated: 1,
	TLS: 2, TLSPercent: 200.0 / 7, ClientCert: 1,
	Products: []Count{{"Orthanc", 2}, {"DCMTK", 1}, {"Horos", 1}, {"dcm4chee-arc", 1}, {"dicomshield", 1}, {"unidentified", 1}},
	Versions: []Count{{"DCMTK 3.6.6", 1}, {"Horos", 1}, {"Orthanc 1.12.4", 1}, {"Orthanc 1.9.7", 1}, {"dcm4chee-arc 5.31.0", 1}, {"dicomshield 0.3.0", 1}, {"unidentified", 1}},
	Findings: map[string]int{"critical": 7, "high": 4, "medium": 1, "low": 3, "info": 1},
}
