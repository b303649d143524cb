dnl tk_krb5.m4: find MIT Kerberos (libkrb5 and libkdb5) and check the KDB DAL.

dnl TK_LIB_KRB5: set KRB5_CFLAGS/KRB5_LIBS and KDB_CFLAGS/KDB_LIBS, through
dnl pkg-config first and krb5-config as a fallback.
AC_DEFUN([TK_LIB_KRB5], [
    AC_PATH_PROG([KRB5_CONFIG], [krb5-config], [],
        [$PATH:/usr/lib/mit/bin:/usr/kerberos/bin])
    PKG_CHECK_MODULES([KRB5], [krb5 >= 1.20], [],
        [AS_IF([test -n "$KRB5_CONFIG"],
            [KRB5_CFLAGS=`$KRB5_CONFIG --cflags krb5`
             KRB5_LIBS=`$KRB5_CONFIG --libs krb5`],
            [AC_MSG_ERROR([MIT Kerberos 1.20 or later not found; install libkrb5-dev])])])
    PKG_CHECK_MODULES([KDB], [kdb], [],
        [AS_IF([test -n "$KRB5_CONFIG"],
            [KDB_CFLAGS=`$KRB5_CONFIG --cflags kdb`
             KDB_LIBS=`$KRB5_CONFIG --libs kdb`],
            [AC_MSG_ERROR([the MIT KDB library was not found; install krb5-multidev])])])
])

dnl TK_KDB_DAL_VERSION(MAJOR): fail unless kdb.h declares that DAL major version.
AC_DEFUN([TK_KDB_DAL_VERSION], [
    tk_save_CPPFLAGS=$CPPFLAGS
    CPPFLAGS="$CPPFLAGS $KDB_CFLAGS"
    AC_CHECK_HEADER([kdb.h], [],
        [AC_MSG_ERROR([kdb.h not found; install krb5-multidev (KDB_CFLAGS=$KDB_CFLAGS)])],
        [#include <krb5.h>])
    AC_MSG_CHECKING([for KDB DAL major version $1])
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <krb5.h>
#include <kdb.h>
#if KRB5_KDB_DAL_MAJOR_VERSION != $1
#error wrong DAL version
#endif]], [])],
        [AC_MSG_RESULT([yes])],
        [AC_MSG_RESULT([no])
         AC_MSG_ERROR([kdb.h does not declare KDB DAL major version $1; this module is written for MIT krb5 1.20 (DAL $1)])])
    CPPFLAGS=$tk_save_CPPFLAGS
])

dnl TK_KDB_PLUGINDIR: where the installed libkdb5 looks for KDB modules, and
dnl where libkrb5 looks for preauth modules.
AC_DEFUN([TK_KDB_PLUGINDIR], [
    tk_krb5_libdir=`$PKG_CONFIG --variable=libdir krb5 2>/dev/null`
    tk_krb5_libdir=`echo "$tk_krb5_libdir" | sed 's,/mit-krb5$,,'`
    AS_IF([test -z "$tk_krb5_libdir"], [tk_krb5_libdir='${libdir}'])
    AC_ARG_WITH([kdb-plugindir],
        [AS_HELP_STRING([--with-kdb-plugindir=DIR],
            [install the tempkey KDB module in DIR @<:@LIBDIR-of-krb5/krb5/plugins/kdb@:>@])],
        [kdbplugindir=$withval],
        [kdbplugindir="$tk_krb5_libdir/krb5/plugins/kdb"])
    AC_SUBST([kdbplugindir])
    AC_ARG_WITH([preauth-plugindir],
        [AS_HELP_STRING([--with-preauth-plugindir=DIR],
            [install the tempkey preauth module in DIR @<:@LIBDIR-of-krb5/krb5/plugins/preauth@:>@])],
        [preauthplugindir=$withval],
        [preauthplugindir="$tk_krb5_libdir/krb5/plugins/preauth"])
    AC_SUBST([preauthplugindir])
])
