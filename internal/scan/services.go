package scan

import "github.com/dicomshield/dicomshield/internal/dimse"

// ServiceDef is one abstract syntax the scanner proposes to find out what a
// stranger may do. Name is the key of Result.Services.
type ServiceDef struct {
	Name     string
	SOPClass string
	// Kind groups services for the exposure verdict: "verification",
	// "query", "retrieve", "store", "worklist", "mpps", "commitment".
	Kind string
}

// Transfer syntaxes proposed with every context: the two every DICOM
// implementation must accept (PS3.5 10.1, A.2) so that a refusal means the
// service, not the encoding, was refused.
var probeSyntaxes = []string{"1.2.840.10008.1.2.1", "1.2.840.10008.1.2"}

// Services are the abstract syntaxes proposed in the services probe, in
// order. Storage classes are the common modalities' (CT, MR, CR, DX, US,
// SC, MG, NM, PET, XA, RT, encapsulated PDF): accepting any is what a
// forged image needs.
var Services = []ServiceDef{
	{"verification", dimse.VerificationSOPClass, "verification"},
	{"patient-root-find", dimse.PatientRootFind, "query"},
	{"study-root-find", dimse.StudyRootFind, "query"},
	{"patient-root-move", dimse.PatientRootMove, "retrieve"},
	{"study-root-move", dimse.StudyRootMove, "retrieve"},
	{"patient-root-get", dimse.PatientRootGet, "retrieve"},
	{"study-root-get", dimse.StudyRootGet, "retrieve"},
	{"modality-worklist", dimse.ModalityWorklistFind, "worklist"},
	{"mpps", "1.2.840.10008.3.1.2.3.3", "mpps"},
	{"storage-commitment", "1.2.840.10008.1.20.1", "commitment"},
	{"ct-storage", "1.2.840.10008.5.1.4.1.1.2", "store"},
	{"mr-storage", "1.2.840.10008.5.1.4.1.1.4", "store"},
	{"cr-storage", "1.2.840.10008.5.1.4.1.1.1", "store"},
	{"dx-storage", "1.2.840.10008.5.1.4.1.1.1.1", "store"},
	{"us-storage", "1.2.840.10008.5.1.4.1.1.6.1", "store"},
	{"sc-storage", "1.2.840.10008.5.1.4.1.1.7", "store"},
	{"mg-storage", "1.2.840.10008.5.1.4.1.1.1.2", "store"},
	{"nm-storage", "1.2.840.10008.5.1.4.1.1.20", "store"},
	{"pet-storage", "1.2.840.10008.5.1.4.1.1.128", "store"},
	{"xa-storage", "1.2.840.10008.5.1.4.1.1.12.1", "store"},
	{"rt-plan-storage", "1.2.840.10008.5.1.4.1.1.481.5", "store"},
	{"pdf-storage", "1.2.840.10008.5.1.4.1.1.104.1", "store"},
}

// proposals returns the presentation contexts of the services probe:
// one per service, in the order of Services.
func proposals() []dimse.Proposal {
	out := make([]dimse.Proposal, len(Services))
	for i, s := range Services {
		out[i] = dimse.Proposal{AbstractSyntax: s.SOPClass, TransferSyntaxes: probeSyntaxes}
	}
	return out
}
