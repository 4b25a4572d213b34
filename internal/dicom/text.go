package dicom

import (
	"strings"

	"github.com/dicomshield/dicomshield/internal/dicom/charset"
)

// TextDecoder returns the character set decoder for the values of ds: the
// one its own Specific Character Set (0008,0005) names, or inherited (the
// enclosing data set's, nil for the default repertoire) when ds has none,
// as PS3.5 7.5.3 says of sequence items. An unsupported term is reported
// with the decoder of the terms that are supported.
func (ds *DataSet) TextDecoder(inherited *charset.Decoder) (*charset.Decoder, error) {
	e := ds.Get(TagSpecificCharacterSet)
	if e == nil {
		return inherited, nil
	}
	// Value 1 may be empty (default repertoire), so split without trimming
	// empty values away.
	raw := strings.Split(strings.TrimRight(string(e.Value), " \x00"), `\`)
	for i := range raw {
		raw[i] = strings.TrimSpace(raw[i])
	}
	return charset.New(raw)
}

// Text returns the values of a text element decoded to UTF-8 with d (nil:
// the default repertoire), split and trimmed like Strings.
func (e *Element) Text(d *charset.Decoder) ([]string, error) {
	if !e.VR.UsesCharset() {
		return e.Strings(), nil
	}
	s, err := d.Decode(e.Value, e.VR.String())
	if err != nil {
		return nil, err
	}
	tmp := Element{VR: e.VR, Value: []byte(s)}
	return tmp.Strings(), nil
}
