/*
 * Orthanc Anonymizer: the "Anonymize (PS3.15)" button of Orthanc Explorer (the interface Orthanc 1.10 serves at
 * /app/explorer.html, jQuery 1.7 + jQuery Mobile). Orthanc appends this file to the explorer's page through
 * orthanc.ExtendOrthancExplorer (served as /plugins/explorer.js), after dialog.js, the dialog it opens (shared with the
 * plugin's own page for Orthanc Explorer 2, page.js).
 *
 * - Every URL is relative to the page (like the explorer's own "../system"), so the explorer keeps working under a
 *   reverse-proxy path prefix (/pacs/app/explorer.html calls /pacs/anonymizer/...).
 * - Requests are same-origin jQuery XHRs: the browser sends its own credentials (HTTP Basic with
 *   AuthenticationEnabled) and $.ajaxSetup's headers (the explorer's ?token= support) with each of them.
 */
(function ($, anonymizer) {
  'use strict';

  var LEVELS = anonymizer.LEVELS;
  var request = anonymizer.request;

  anonymizer.configure({ root: '../' });  // the explorer is /app/explorer.html

  function pageUrl(page, uuid) {
    return 'explorer.html#' + page + '?uuid=' + encodeURIComponent(uuid);
  }

  /* The page and resource shown, from the hash ("#study?uuid=..."), which is what the explorer navigates by. */
  function currentResource() {
    var match = /^#(patient|study|series)\?(?:.*&)?uuid=([^&]+)/.exec(window.location.hash);
    if (!match) {
      return null;
    }
    return { page: match[1], uuid: decodeURIComponent(match[2]), level: LEVELS[match[1]] };
  }

  /* ------------------------------------------------------------------------------------------------ page parts */

  function installButton(page) {
    var builtIn = $('#' + page + '-anonymize');
    if (!builtIn.length || $('#' + page + '-anonymize-ps315').length) {
      return;
    }
    var item = $('<li data-icon="check" data-theme="b">')
      .append($('<a href="#" role="button">').attr('id', page + '-anonymize-ps315').text('Anonymize (PS3.15)'));
    var list = builtIn.closest('ul');
    builtIn.closest('li').after(item);
    list.listview('refresh');
  }

  function linksList(page) {
    var list = $('#oa-' + page + '-links');
    if (list.length) {
      return list;
    }
    list = $('<ul data-role="listview" data-inset="true" data-theme="d" data-divider-theme="c" class="oa-links">')
      .attr('id', 'oa-' + page + '-links').hide();
    $('#' + page + '-anonymize').closest('ul').after(list);
    list.listview();
    return list;
  }

  var shownLinks = '';

  function refreshLinks() {
    var resource = currentResource();
    if (!resource) {
      return;
    }
    var key = resource.page + '/' + resource.uuid;
    shownLinks = key;
    var list = linksList(resource.page);
    var route = resource.level.route + '/' + encodeURIComponent(resource.uuid);
    request('GET', 'anonymizer/' + route + '/links').done(function (links) {
      if (shownLinks !== key) {
        return;  // the user moved on
      }
      list.empty().append($('<li data-role="list-divider">').text('PS3.15 anonymization'));
      var any = false;
      if (links.Source) {
        any = true;
        var originalItem = $('<li data-icon="back" data-theme="e">')
          .append($('<a data-ajax="false">').attr('id', 'oa-' + resource.page + '-original')
            .attr('href', pageUrl(resource.page, links.Source)).text('Original ' + resource.level.word))
          .appendTo(list);
        request('GET', resource.level.route + '/' + encodeURIComponent(links.Source)).fail(function (xhr) {
          if (xhr.status === 404 && shownLinks === key) {
            // Anonymized with "Keep original" off: the link would lead nowhere.
            originalItem.replaceWith($('<li class="oa-original-gone">').attr('id', 'oa-' + resource.page + '-original')
              .text('Original ' + resource.level.word + ': deleted after anonymization'));
            list.listview('refresh');
          }
        });
        var profileItem = $('<li class="oa-profile-used">').attr('id', 'oa-' + resource.page + '-profile')
          .text('Anonymized copy').appendTo(list);
        request('GET', route + '/metadata/AnonymizationProfile').done(function (text) {
          profileItem.text(anonymizer.describeProfile(typeof text === 'string' ? text : JSON.stringify(text)));
        }).fail(function () {
          profileItem.text('Anonymized copy (profile not recorded)');
        });
      }
      var copies = links.Copies || [];
      if (copies.length) {
        any = true;
        $('<li data-role="list-divider">').text('Anonymized copies (' + copies.length + ')').appendTo(list);
        $.each(copies.slice(0, 50), function (i, copy) {
          var link = $('<a class="oa-copy" data-ajax="false">').attr('href', pageUrl(resource.page, copy))
            .text('Copy ' + (i + 1) + ': ' + copy.substring(0, 8) + '…');
          $('<li data-icon="arrow-r">').append(link).appendTo(list);
          request('GET', resource.level.route + '/' + encodeURIComponent(copy)).done(function (found) {
            link.text('Copy ' + (i + 1) + ': ' + anonymizer.resourceLabel(resource.page, found));
          });
        });
      }
      list.toggle(any).listview('refresh');
    }).fail(function () {
      if (shownLinks === key) {
        list.hide();  // the plugin is busy or absent: the page works without this part
      }
    });
  }

  function onPageShow() {
    var resource = currentResource();
    if (resource) {
      installButton(resource.page);
      refreshLinks();
    }
  }

  /* Install the button on every page now: each page of explorer.html is in the one document. */
  $(document).on('pagebeforeshow', '#patient, #study, #series', function () {
    anonymizer.installStyle();
    // After the explorer's own handlers (they read $.mobile.pageData, which we do not depend on).
    window.setTimeout(onPageShow, 0);
  });

  // The explorer moves from one study to another without a new "pagebeforeshow" (same page, new hash).
  $(window).on('hashchange', function () {
    window.setTimeout(function () {
      var resource = currentResource();
      if (resource && resource.page + '/' + resource.uuid !== shownLinks) {
        onPageShow();
      }
    }, 0);
  });

  $(document).on('click', '#patient-anonymize-ps315, #study-anonymize-ps315, #series-anonymize-ps315',
    function (event) {
      event.preventDefault();
      openDialog();
    });

  var dialogResource = null;  // what the dialog last opened was for

  /* The dialog over the page for the resource shown; a complete copy opens at once, an incomplete one by a button. */
  function openDialog() {
    var resource = currentResource();
    if (!resource) {
      return;
    }
    dialogResource = resource;
    anonymizer.open(resource, {
      openCopy: function (page, uuid) {
        window.location.assign(pageUrl(page, uuid));
      },
      copyLinks: function (page, uuid, source, area) {
        $('<a href="#" id="oa-open-copy" role="button" data-ajax="false" data-role="button" data-inline="true" data-theme="b">')
          .text('Open the anonymized ' + LEVELS[page].word)
          .attr('href', pageUrl(page, uuid))
          .appendTo(area)
          .button();
      }
    });
  }

  // The dialog belongs to the resource it was opened on: once the explorer shows another page or resource (a link,
  // Back), close it, or its overlay would stay over that page and take every click there.
  function closeDialogElsewhere() {
    var shown = currentResource();
    if (dialogResource && !(shown && shown.page === dialogResource.page && shown.uuid === dialogResource.uuid)) {
      anonymizer.close();
      dialogResource = null;
    }
  }
  $(document).on('pagechange', closeDialogElsewhere);
  $(window).on('hashchange', closeDialogElsewhere);
}(jQuery, window.OrthancAnonymizer));
