/*
 * Converting and copying images: disk_convert() and disk_convert_images()
 * are declared with the other offline image operations in disk/image.h.
 */
#ifndef TABIQUE_DISK_CONVERT_H
#define TABIQUE_DISK_CONVERT_H

#include "disk/image.h"

#endif
