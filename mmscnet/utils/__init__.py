"""Helpers with no registry of their own and no import of the rest of the
package: config rewrites (:mod:`.config`), checkpoint reading
(:mod:`.checkpoint_io`), checkpoint converters (:mod:`.converters`),
distributed setup (:mod:`.dist_utils`), analysis (:mod:`.analysis`), image
files (:mod:`.image_file`, numpy and cv2 only) and small helpers
(:mod:`.misc`). ``import mmscnet`` imports only :mod:`.checkpoint_io`;
import the others where they are used."""
