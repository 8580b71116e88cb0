"""Code used only by the vasomim_seg bundle: network, encoder loading, data pairing, labels, clDice,
DICOM SEG output."""
