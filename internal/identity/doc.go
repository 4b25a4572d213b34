// Package identity knows dicomshield's users and checks the credentials a
// peer presents in DICOM user identity negotiation (PS3.7 D.3.3.7):
// user names with passwords hashed with Argon2id in users.json, and JSON
// Web Tokens verified against an issuer's published keys (a JWKS).
//
// It decides who the user is and which rights the user's roles grant; it
// knows nothing of sockets or PDUs beyond the identity sub-item's fields,
// and nothing of storage. The archive intersects the rights with the
// peer's and turns a failure into an A-ASSOCIATE-RJ.
package identity
